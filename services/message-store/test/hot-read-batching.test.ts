// Issue 13 point 2: the hot history read sends the work of one event-loop turn together — the version lookups of
// the reads that arrived in the turn in one statement (BatchQueue's gatherTurn), and their Redis commands in one
// socket write (the Redis backend corks its socket for the turn). These tests check that the batching happens,
// and that it changes nothing a caller sees: each read gets its own session's answer, identical to the uncached
// one read from Postgres, and never older than a write acknowledged before the read.
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { BatchQueue } from '@session-runtime/db'
import t from 'tap'
import { createRedisBackend } from '../src/cache/redis-backend.js'
import { readHistoryJson } from '../src/domain/repository/history-reads.js'
import {
  backends,
  buildTestApp,
  cacheKind,
  deleteKeys,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  uniqueName,
  waitFor,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

const turn = () => new Promise((resolve) => setImmediate(resolve))

t.test('gatherTurn: what is pushed in one turn goes in one batch, even on an idle queue', async (t) => {
  const batches: number[][] = []
  let release!: () => void
  const queue = new BatchQueue<number>(
    async (batch) => {
      batches.push(batch)
      await new Promise<void>((resolve) => {
        release = resolve
      })
    },
    { maxInFlight: 1, maxBatch: 100, gatherTurn: true },
  )
  queue.push(1)
  queue.push(2)
  queue.push(3)
  t.same(batches, [], 'nothing is sent before the turn ends')
  await turn()
  t.same(batches, [[1, 2, 3]], "the turn's three items went in one batch")
  queue.push(4)
  await turn()
  t.same(batches, [[1, 2, 3]], 'the only slot is busy: the next item waits')
  release()
  queue.push(5) // in the same turn as the end of the batch in flight
  await turn()
  t.same(
    batches,
    [
      [1, 2, 3],
      [4, 5],
    ],
    'the next batch took what arrived until the end of the turn',
  )
  release()
  await turn()
  t.equal(queue.batches, 2)
})

t.test('gatherTurn: a batch never carries more than maxBatch; the rest goes in the next free slot', async (t) => {
  const batches: number[][] = []
  const queue = new BatchQueue<number>(
    async (batch) => {
      batches.push(batch)
    },
    { maxInFlight: 2, maxBatch: 3, gatherTurn: true },
  )
  for (let i = 1; i <= 7; i++) queue.push(i)
  await turn()
  t.same(batches, [
    [1, 2, 3],
    [4, 5, 6],
  ])
  await turn()
  await turn()
  t.same(batches.at(-1), [7])
})

const redisUrl = backends.redisUrl
if (redisUrl) {
  t.test(
    'Redis backend: the commands of one turn leave in one socket write, each read gets its own entry',
    async (t) => {
      const prefix = `${uniqueName('batching')}:`
      const backend = createRedisBackend({
        url: redisUrl,
        keyPrefix: prefix,
        commandTimeoutMs: 2000,
        maxEntries: 100,
        ttlMs: 60_000,
      })
      t.teardown(async () => {
        await backend.close()
        await deleteKeys(redisUrl, prefix)
      })
      await waitFor(() => backend.status() === 'up')
      const sessions = Array.from({ length: 20 }, (_, i) => `s${i}`)
      const json = (s: string, n: number) => JSON.stringify({ session: s, n })
      await Promise.all(sessions.map((s, i) => backend.fill(s, 10 + i, 'c', 'k', [json(s, 1), json(s, 2)])))

      // Count the writes to Redis's port while 20 reads are issued in one turn.
      const port = Number(new URL(redisUrl).port || 6379)
      const socket = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
      const original = { _write: socket._write, _writev: socket._writev }
      let writes = 0
      for (const method of ['_write', '_writev'] as const) {
        socket[method] = function (this: net.Socket, ...args: unknown[]) {
          if (this.remotePort === port) writes++
          return original[method].apply(this, args)
        }
      }
      let read: Awaited<ReturnType<typeof backend.get>>[]
      try {
        read = await Promise.all(sessions.map((s) => backend.get(s, 10)))
      } finally {
        Object.assign(socket, original)
      }
      t.equal(writes, 1, `20 reads issued in one turn went to Redis in ${writes} write(s)`)
      t.same(
        read.map((h) => h && { version: h.version, flag: h.flag, entries: h.entries.map(String) }),
        sessions.map((s, i) => ({ version: 10 + i, flag: 'c', entries: [json(s, 1), json(s, 2)] })),
        'each read got its own session, at its version',
      )
    },
  )
}

t.test('hot reads issued together: each answer is the uncached one, byte for byte, and never stale', async (t) => {
  const app = await buildTestApp(t)
  t.ok(app.historyCache, 'this test needs the history cache')
  const flow_id = randomUUID()
  const sessions = Array.from({ length: 30 }, (_, i) => `session ${i}`)
  const get = (session_id: string, extra: Record<string, string> = {}) =>
    app.inject({
      method: 'GET',
      url: '/internal/history',
      headers: internalHeaders(),
      query: { flow_id, session_id, limit: '3', ...extra },
    })
  const uncached = (session_id: string, order: 'ASC' | 'DESC' = 'ASC') =>
    readHistoryJson(app.db, 'tenant-a', flow_id, session_id, 3, order)

  for (const [i, session_id] of sessions.entries()) {
    await store(
      app,
      'tenant-a',
      [1, 2, 3, 4].map((n) =>
        messageInput({ flow_id, session_id, text: `m${n} of ${i}`, properties: { n, quote: 'a "b" \\ é 東' } }),
      ),
    )
  }
  await Promise.all(sessions.map((s) => get(s))) // every entry filled (or appended) by now

  for (let round = 0; round < 3; round++) {
    // An acknowledged write to every other session, then every session read at once: the reads that find the
    // write must include it (its append or a miss), the others answer what they had.
    const written = sessions.filter((_, i) => (i + round) % 2 === 0)
    await Promise.all(
      written.map((session_id) =>
        store(app, 'tenant-a', [messageInput({ flow_id, session_id, text: `round ${round} ${session_id}` })]),
      ),
    )
    const hitsBefore = app.repository.stats().hits
    const [asc, desc] = await Promise.all([
      Promise.all(sessions.map((s) => get(s))),
      Promise.all(sessions.map((s) => get(s, { order: 'DESC' }))),
    ])
    t.ok(app.repository.stats().hits > hitsBefore, 'reads were served from the cache')
    for (const [i, session_id] of sessions.entries()) {
      t.equal(asc[i]?.statusCode, 200)
      t.equal(asc[i]?.body, await uncached(session_id), `${session_id}: the cached answer is the uncached one`)
      t.equal(desc[i]?.body, await uncached(session_id, 'DESC'), `${session_id}, DESC: the same`)
      const texts = (JSON.parse(asc[i]?.body ?? '[]') as { text: string }[]).map((m) => m.text)
      if (written.includes(session_id)) {
        t.equal(texts.at(-1), `round ${round} ${session_id}`, `${session_id}: the acknowledged write is in it`)
      }
    }
  }
})
