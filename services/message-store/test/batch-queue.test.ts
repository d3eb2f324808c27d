import { BatchQueue } from '@session-runtime/db'
import t from 'tap'
import { type SessionKey, VersionLookups } from '../src/domain/version-lookups.js'

/** A promise and its resolver, to hold a batch in flight until the test lets it finish. */
function gate() {
  let open!: () => void
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

/** A queue whose batches are recorded and each held in flight until its gate is opened. */
function heldQueue<T>(maxInFlight: number, maxBatch: number, size?: (item: T) => number) {
  const batches: T[][] = []
  const gates: ReturnType<typeof gate>[] = []
  const queue = new BatchQueue<T>(
    async (batch) => {
      batches.push(batch)
      const g = gate()
      gates.push(g)
      await g.promise
    },
    { maxInFlight, maxBatch },
    size,
  )
  return { queue, batches, gates }
}

t.test('an idle queue sends an item at once; items arriving while every slot is busy go together next', async (t) => {
  const { queue, batches, gates } = heldQueue<number>(1, 100)
  queue.push(1)
  t.same(batches, [[1]], 'the first item went out alone, without waiting')
  for (let i = 2; i <= 5; i++) queue.push(i)
  t.same(batches, [[1]], 'nothing more is sent while the only slot is busy')
  gates[0]?.open()
  await tick()
  t.same(batches, [[1], [2, 3, 4, 5]], 'the waiting items went in one batch, in arrival order')
  gates[1]?.open()
  await tick()
  t.equal(queue.batches, 2)
})

t.test('a batch carries at most maxBatch size units; maxInFlight batches run at once', async (t) => {
  const { queue, batches, gates } = heldQueue<string>(2, 4, (item) => item.length)
  queue.push('a')
  queue.push('b')
  t.same(batches, [['a'], ['b']], 'two slots: two items out at once')
  for (const item of ['cc', 'dd', 'e', 'ffff', 'g']) queue.push(item)
  gates[0]?.open()
  await tick()
  t.same(batches.at(-1), ['cc', 'dd'], 'the next batch stops before passing 4 units')
  gates[1]?.open()
  await tick()
  t.same(batches.at(-1), ['e'], 'an item that does not fit waits for the next batch')
  gates[2]?.open()
  await tick()
  t.same(batches.at(-1), ['ffff'])
  gates[3]?.open()
  await tick()
  t.same(batches.at(-1), ['g'])
  gates[4]?.open()
  await tick()
  t.equal(queue.batches, 6)
})

t.test('version lookups: coalesced under load, each caller gets its own session version', async (t) => {
  const statements: SessionKey[][] = []
  const versionOf = (k: SessionKey) => Number(k.sessionId.slice(1)) * 10
  let release = gate()
  const lookups = new VersionLookups(
    async (keys) => {
      statements.push(keys)
      await release.promise
      return keys.map(versionOf)
    },
    { maxInFlight: 1, maxBatch: 1000 },
  )
  const first = lookups.get('t1', 'f', 's1')
  const rest = [2, 3, 4].map((i) => lookups.get(`t${i}`, 'f', `s${i}`))
  t.equal(statements.length, 1, 'one statement in flight; the others wait')
  const held = release
  release = gate()
  held.open()
  t.equal(await first, 10)
  await tick()
  t.equal(statements.length, 2, 'the three waiting lookups went in one statement')
  t.same(
    statements[1]?.map((k) => k.tenant),
    ['t2', 't3', 't4'],
  )
  release.open()
  t.same(await Promise.all(rest), [20, 30, 40], 'each answer is the version of its own session')
  t.equal(lookups.statements, 2)
})

t.test('version lookups: a lookup is sent only after it was asked for (never answered by an older one)', async (t) => {
  let calls = 0
  let release = gate()
  const lookups = new VersionLookups(
    async (keys) => {
      const at = ++calls
      await release.promise
      return keys.map(() => at)
    },
    { maxInFlight: 1, maxBatch: 1000 },
  )
  const early = lookups.get('t', 'f', 's')
  const held = release
  release = gate()
  const late = lookups.get('t', 'f', 's') // arrives while the first statement is in flight
  held.open()
  release.open()
  t.equal(await early, 1)
  t.equal(await late, 2, 'the later read waited for a statement sent after it arrived')
})

t.test('version lookups: a failed statement rejects every lookup in it, and the queue goes on', async (t) => {
  let fail = true
  const lookups = new VersionLookups(
    async (keys) => {
      if (fail) throw new Error('connection lost')
      return keys.map(() => 7)
    },
    { maxInFlight: 1, maxBatch: 1000 },
  )
  const failed = [lookups.get('t', 'f', 'a'), lookups.get('t', 'f', 'b')]
  const results = await Promise.allSettled(failed)
  t.same(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  )
  fail = false
  t.equal(await lookups.get('t', 'f', 'c'), 7, 'the next lookup is answered')
})
