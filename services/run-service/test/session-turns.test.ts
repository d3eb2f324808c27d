// The per-session rule's domain logic (src/domain/session-runs.ts) alone, on an in-memory store that keeps the
// store's rules (one holder per session, waiters by ticket, instances' leases): the Postgres side is
// session-runs.test.ts.
import { waitFor } from '@session-runtime/stack'
import t from 'tap'
import {
  SessionBusyError,
  type SessionKey,
  SessionRuns,
  type SessionTurnStore,
  sessionKeyId,
} from '../src/domain/session-runs.js'

/** The store's rules in memory, for several instances: `store(instance)` is one instance's view. */
class Turns {
  holders = new Map<string, { ticket: string; instance: string }>()
  waiters = new Map<string, { ticket: number; instance: string }[]>()
  dead = new Set<string>()
  calls: string[] = []
  /** The next call of any store fails with this, once. */
  failNext: Error | undefined
  private next = 1
  private readonly woken = new Map<string, SessionRuns>()

  private liveHolder(id: string) {
    const holder = this.holders.get(id)
    return holder && !this.dead.has(holder.instance) ? holder : undefined
  }
  private liveWaiters(id: string) {
    return (this.waiters.get(id) ?? []).filter((w) => !this.dead.has(w.instance))
  }
  private wakeAll(key: SessionKey) {
    for (const runs of this.woken.values()) runs.wake(key)
  }
  private check(call: string) {
    this.calls.push(call)
    const failure = this.failNext
    this.failNext = undefined
    if (failure) throw failure
  }

  store(instance: string): SessionTurnStore {
    return {
      take: async (key) => {
        this.check('take')
        const id = sessionKeyId(key)
        if (this.liveHolder(id) || this.liveWaiters(id).length > 0) return undefined
        const ticket = String(this.next++)
        this.holders.set(id, { ticket, instance })
        return ticket
      },
      join: async (key) => {
        this.check('join')
        const id = sessionKeyId(key)
        const ticket = this.next++
        this.waiters.set(id, [...(this.waiters.get(id) ?? []), { ticket, instance }])
        return String(ticket)
      },
      promote: async (key, ticket) => {
        this.check('promote')
        const id = sessionKeyId(key)
        if (this.liveHolder(id)) return false
        if (this.liveWaiters(id).some((w) => w.ticket < Number(ticket))) return false
        this.holders.set(id, { ticket, instance })
        this.waiters.set(
          id,
          (this.waiters.get(id) ?? []).filter((w) => w.ticket !== Number(ticket)),
        )
        return true
      },
      leave: async (key, ticket) => {
        this.check('leave')
        const id = sessionKeyId(key)
        this.waiters.set(
          id,
          (this.waiters.get(id) ?? []).filter((w) => w.ticket !== Number(ticket)),
        )
        this.wakeAll(key)
      },
      release: async (key, ticket) => {
        this.check('release')
        const id = sessionKeyId(key)
        if (this.holders.get(id)?.ticket === ticket) this.holders.delete(id)
        this.wakeAll(key)
      },
    }
  }

  /** An instance whose releases wake the others (as NOTIFY does); `pollMs` long unless given. */
  instance(name: string, pollMs = 60_000): SessionRuns {
    const runs = new SessionRuns({ store: this.store(name), pollMs })
    this.woken.set(name, runs)
    return runs
  }
}

const key = (sessionId = 's'): SessionKey => ({ tenant: 't', flowId: 'f', sessionId })
const tick = () => new Promise((resolve) => setImmediate(resolve))

/** A run that records when it starts and ends, and ends when `finish()` is called. */
function recorder() {
  const log: string[] = []
  const finishers = new Map<string, () => void>()
  const run = (
    runs: SessionRuns,
    name: string,
    k = key(),
    strategy: 'enqueue' | 'reject' = 'enqueue',
    signal?: AbortSignal,
  ) =>
    runs.inTurn(k, strategy, signal, async () => {
      log.push(`start ${name}`)
      await new Promise<void>((resolve) => finishers.set(name, resolve))
      log.push(`end ${name}`)
      return name
    })
  const finish = async (name: string) => {
    await waitFor(() => finishers.has(name), `${name} starts`, 5_000, 1)
    finishers.get(name)?.()
  }
  return { log, run, finish }
}

t.test('runs on one session: one at a time, in arrival order; others concurrently', async (t) => {
  const turns = new Turns()
  const runs = turns.instance('a')
  const { log, run, finish } = recorder()
  const results = ['r1', 'r2', 'r3'].map((name) => run(runs, name))
  const other = run(runs, 'other', key('other'))
  await tick()
  for (const name of ['r1', 'other', 'r2', 'r3']) await finish(name)
  t.same(await Promise.all([...results, other]), ['r1', 'r2', 'r3', 'other'])
  t.same(log, ['start r1', 'start other', 'end r1', 'end other', 'start r2', 'end r2', 'start r3', 'end r3'])
  t.equal(turns.calls.filter((c) => c === 'take').length, 4, 'each asked the store once: the fast path')
  t.notOk(turns.calls.includes('join'), 'nobody queued in the store: the local queue kept them apart')
  t.equal(runs.activeSessions, 0, 'nothing left')
  t.same([...turns.holders.keys()], [], 'every session released')
})

t.test('reject: refused while a run is in flight here or elsewhere; nothing queued', async (t) => {
  const turns = new Turns()
  const a = turns.instance('a')
  const b = turns.instance('b')
  const { run, finish } = recorder()
  const first = run(a, 'first')
  await tick()
  await t.rejects(run(a, 'local', key(), 'reject'), SessionBusyError, 'the same instance: refused without the store')
  await t.rejects(run(b, 'remote', key(), 'reject'), SessionBusyError, 'another instance: the store refuses')
  t.notOk(turns.calls.includes('join'), 'no reject ever queues')
  await finish('first')
  await first
  const later = run(b, 'later', key(), 'reject')
  await finish('later')
  t.equal(await later, 'later', 'free again once the first released')
  t.equal(a.activeSessions + b.activeSessions, 0)
})

t.test('enqueue across instances: a waiter is woken by the release, in ticket order', async (t) => {
  const turns = new Turns()
  const [a, b, c] = [turns.instance('a'), turns.instance('b'), turns.instance('c')]
  const { log, run, finish } = recorder()
  const first = run(a, 'a1')
  await tick()
  const second = run(b, 'b1')
  await tick()
  const third = run(c, 'c1')
  for (let i = 0; i < 10; i++) await tick()
  t.same(
    (turns.waiters.get(sessionKeyId(key())) ?? []).map((w) => w.instance),
    ['b', 'c'],
    'b and c wait, in arrival order',
  )
  await finish('a1')
  await finish('b1')
  await finish('c1')
  t.same(await Promise.all([first, second, third]), ['a1', 'b1', 'c1'])
  t.same(log, ['start a1', 'end a1', 'start b1', 'end b1', 'start c1', 'end c1'])
})

t.test('a holder whose instance died is passed over by polling (no wake-up ever comes)', async (t) => {
  const turns = new Turns()
  const a = turns.instance('a')
  const b = turns.instance('b', 5)
  const { log, run, finish } = recorder()
  void run(a, 'doomed').catch(() => {})
  await tick()
  const waiting = run(b, 'survivor')
  // b polls every 5 ms while a's instance lives: it keeps waiting (however many polls a slow machine allows)
  await waitFor(() => turns.calls.filter((c) => c === 'promote').length >= 3, 'b polls', 5_000, 1)
  t.notOk(log.includes('start survivor'), 'b does not run while a holds the session')
  turns.dead.add('a') // a's lease runs out: no release, no wake-up
  await finish('survivor')
  t.equal(await waiting, 'survivor', 'b took the session over on its next poll')
})

t.test('cancelled while waiting: in the local queue, or in the store (its waiter leaves)', async (t) => {
  const turns = new Turns()
  const a = turns.instance('a')
  const b = turns.instance('b')
  const { log, run, finish } = recorder()
  const first = run(a, 'first')
  await tick()
  const local = new AbortController()
  const queuedHere = run(a, 'queued-here', key(), 'enqueue', local.signal)
  const remote = new AbortController()
  const queuedThere = run(b, 'queued-there', key(), 'enqueue', remote.signal)
  const last = run(a, 'last')
  for (let i = 0; i < 10; i++) await tick()
  t.equal(turns.waiters.get(sessionKeyId(key()))?.length, 1, "b's run waits in the store")
  local.abort(new Error('client went away'))
  remote.abort(new Error('client went away too'))
  await t.rejects(queuedHere, { message: 'client went away' })
  await t.rejects(queuedThere, { message: 'client went away too' })
  t.ok(turns.calls.includes('leave'), 'the waiter left the store')
  t.same(turns.waiters.get(sessionKeyId(key())), [], 'no waiter left behind')
  await finish('first')
  await finish('last')
  t.same(await Promise.all([first, last]), ['first', 'last'])
  t.same(log, ['start first', 'end first', 'start last', 'end last'], 'the cancelled ones never ran')
  await t.rejects(
    run(a, 'too-late', key(), 'enqueue', AbortSignal.abort(new Error('gone before'))),
    { message: 'gone before' },
    'an aborted signal: refused at once',
  )
  t.equal(a.activeSessions + b.activeSessions, 0)
})

t.test(
  'the store failing: the run fails, the next one of the session goes on; a failed release is retried',
  async (t) => {
    const turns = new Turns()
    const runs = turns.instance('a')
    const { run, finish } = recorder()
    const down = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    turns.failNext = down
    await t.rejects(run(runs, 'unlucky'), down, 'the take failed: so does the run')
    const next = run(runs, 'next')
    await finish('next')
    t.equal(await next, 'next', 'the session is not stuck')

    const held = run(runs, 'held')
    await finish('held')
    for (let i = 0; i < 10 && turns.calls.at(-1) !== 'take'; i++) await tick()
    turns.failNext = down // its release fails
    t.equal(await held, 'held', 'the run answers anyway')
    t.equal(runs.pendingReleases, 1, 'its release waits for a retry')
    t.equal(turns.holders.size, 1, 'the store still has it held (by a live instance)')
    t.equal(await runs.retryReleases(), 0, 'the heartbeat retries it')
    t.equal(turns.holders.size, 0, 'released')
  },
)
