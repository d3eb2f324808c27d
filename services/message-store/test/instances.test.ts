// Several message-store instances on one Postgres: after any instance acknowledges a change (write, edit,
// rename, delete, session delete, flow delete, failed-mark), no instance serves a history that lacks it.
// Instance A acknowledges, instance B (whose cache was warm with the old state) reads. Caches: one Redis
// reached by both; one Redis that A reaches through a TCP relay which is then frozen, cut, or slowed (A cut off
// from Redis, B not); Redis restarted empty or with old data; no Redis at all (each instance its own in-process
// cache). Every read of B is compared with Postgres read directly: the count of stale reads must be 0.
import { randomUUID } from 'node:crypto'
import { hasRedisServer, RedisServer, startRedisServer, startTcpRelay, type TcpRelay } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { HistoryService } from '../src/domain/history-service.js'
import {
  backends,
  buildTestApp,
  dropSchema,
  history,
  internalHeaders,
  messageInput,
  type TestApp,
  uniqueName,
} from './helpers/app.js'

const TENANT = 'tenant-a'
const COMMAND_TIMEOUT_MS = 200
/** Reads of B after each acknowledged change (each compared with Postgres). */
const READS = 5

type Read = Awaited<ReturnType<typeof history>>

interface Pair {
  a: TestApp
  b: TestApp
  /** Postgres itself, no cache: the truth. */
  truth: HistoryService
}

async function pair(t: Test, envA: Record<string, string>, envB: Record<string, string>, cache: 'default' | 'memory') {
  const schema = uniqueName('inst')
  const keyPrefix = `${uniqueName('inst')}:`
  t.teardown(() => dropSchema(schema))
  const a = await buildTestApp(t, { schema, keyPrefix, cache, env: { ...envA } })
  const b = await buildTestApp(t, { schema, keyPrefix, cache, env: { ...envB } })
  return { a, b, truth: new HistoryService(a.db, undefined, { maxEntries: 200, maxMessageBytes: 16_384 }) }
}

async function call(app: TestApp, method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, headers: internalHeaders(TENANT), payload: payload as never })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

/** What each change does, through instance A; `sessions` are the sessions whose histories it changes. */
const CHANGES: Array<{
  name: string
  run(a: TestApp, s: { flow_id: string; ids: string[] }): Promise<unknown>
  sessions: string[]
}> = [
  {
    name: 'write',
    run: (a, { flow_id }) =>
      call(a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm3' })),
    sessions: ['s'],
  },
  {
    name: 'edit',
    run: (a, { ids }) => call(a, 'PUT', `/api/v1/monitor/messages/${ids[0]}`, { text: 'm1 edited' }),
    sessions: ['s'],
  },
  {
    name: 'rename',
    run: (a, { flow_id }) =>
      call(a, 'PATCH', `/api/v1/monitor/messages/session/s?flow_id=${flow_id}&new_session_id=renamed`),
    sessions: ['s', 'renamed'],
  },
  {
    name: 'delete messages',
    run: (a, { ids }) => call(a, 'DELETE', '/api/v1/monitor/messages', [ids[1]]),
    sessions: ['s'],
  },
  {
    name: 'delete the session',
    run: (a, { flow_id }) => call(a, 'DELETE', `/api/v1/monitor/messages/session/s?flow_id=${flow_id}`),
    sessions: ['s'],
  },
  {
    name: 'delete the flow',
    run: (a, { flow_id }) => call(a, 'DELETE', `/internal/flows/${flow_id}/messages`),
    sessions: ['s'],
  },
  {
    name: 'failed-mark',
    run: (a, { flow_id, ids }) =>
      call(a, 'POST', '/internal/messages/failed', {
        messages: [messageInput({ id: ids[1], flow_id, session_id: 's', text: 'm2' })],
      }),
    sessions: ['s'],
  },
]

/**
 * For every change: B warms its cache of the session (a second read is a hit), A acknowledges the change,
 * then B reads READS times. Returns the number of B's reads that differed from Postgres.
 */
async function everyChange(t: Test, p: Pair, what: string): Promise<number> {
  let stale = 0
  let reads = 0
  for (const change of CHANGES) {
    const flow_id = randomUUID()
    const stored = await call(p.b, 'POST', '/internal/messages/batch', {
      messages: [
        messageInput({ flow_id, session_id: 's', text: 'm1' }),
        messageInput({ flow_id, session_id: 's', sender: 'Machine', sender_name: 'AI', text: 'm2' }),
      ],
    })
    const ids = (stored.json() as Array<{ id: string }>).map((m) => m.id)
    // B reads the renamed session too, so that an empty history of it could be cached.
    for (const session of change.sessions) await history(p.b, TENANT, { flow_id, session_id: session })
    const warmed = p.b.repository.stats().hits
    for (const session of change.sessions) await history(p.b, TENANT, { flow_id, session_id: session })
    const started = Date.now()
    await change.run(p.a, { flow_id, ids })
    const ackMs = Date.now() - started
    t.ok(ackMs < 3000, `${what}, ${change.name}: acknowledged by A in ${ackMs} ms`)
    for (let i = 0; i < READS; i++) {
      for (const session of change.sessions) {
        const q = { flow_id, session_id: session, limit: 100, order: 'ASC' as const }
        const expected = JSON.parse(String(await p.truth.read(TENANT, q))) as Read
        const got = await history(p.b, TENANT, q)
        reads++
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          stale++
          t.fail(`${what}, ${change.name}: B served ${session} stale`, { got: texts(got), expected: texts(expected) })
        }
      }
    }
    // The warm-up reads were hits: B's cache was really in play.
    t.ok(p.b.repository.stats().hits > warmed, `${what}, ${change.name}: B's cache was warm`)
  }
  t.equal(stale, 0, `${what}: 0 stale of ${reads} reads through B`)
  return stale
}

const texts = (list: Read) => list.map((m) => m.text)

if (!backends.postgresUrl) {
  t.comment('left out: several instances need one real Postgres (PGlite is embedded in one process)')
} else {
  t.test('no Redis: each instance its own in-process cache', async (t) => {
    const p = await pair(t, {}, {}, 'memory')
    t.equal(p.a.repository.cacheState().kind, 'memory')
    await everyChange(t, p, 'in-process caches')
  })

  if (!backends.redisUrl || !hasRedisServer()) {
    t.comment('left out: the Redis cases need a redis-server of their own (none installed)')
  } else {
    /** A Redis of this test's own; A reaches it through a relay, B directly. */
    async function relayed(t: Test): Promise<Pair & { server: RedisServer; relay: TcpRelay }> {
      const server = await startRedisServer(t)
      const relay = await startTcpRelay(server.port, { t })
      const env = { REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) }
      const p = await pair(
        t,
        { ...env, REDIS_URL: `redis://127.0.0.1:${relay.port}` },
        { ...env, REDIS_URL: server.url },
        'default',
      )
      t.equal(p.a.repository.cacheState().kind, 'redis')
      return { ...p, server, relay }
    }

    t.test('one Redis that both instances reach', async (t) => {
      const p = await relayed(t)
      await everyChange(t, p, 'both reach Redis')
    })

    t.test('A cut off from Redis by a frozen link', async (t) => {
      const p = await relayed(t)
      p.relay.freeze()
      t.teardown(() => p.relay.thaw())
      await everyChange(t, p, 'frozen link')
    })

    t.test('A cut off from Redis by a closed link', async (t) => {
      const p = await relayed(t)
      p.relay.cut()
      t.teardown(() => p.relay.restore())
      await everyChange(t, p, 'closed link')
    })

    t.test('A on a slow link to Redis (slower than its command timeout)', async (t) => {
      const p = await relayed(t)
      p.relay.delay(COMMAND_TIMEOUT_MS * 2)
      t.teardown(() => p.relay.delay(0))
      await everyChange(t, p, 'slow link')
    })

    t.test('Redis restarted empty, and restarted with old data', async (t) => {
      const server = await startRedisServer(t, { persistent: true })
      const env = { REDIS_URL: server.url, REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) }
      const p = await pair(t, env, env, 'default')
      const flow_id = randomUUID()
      await call(p.a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm1' }))
      const q = { flow_id, session_id: 's' }
      t.same(texts(await history(p.b, TENANT, q)), ['m1'])
      await server.command('SAVE')
      // Changes Redis will not know of once it is back with the saved data.
      await call(p.a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm2' }))
      await server.kill()
      await call(p.a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm3' }))
      await server.start()
      await waitUp(p)
      for (let i = 0; i < READS; i++) {
        t.same(texts(await history(p.b, TENANT, q)), ['m1', 'm2', 'm3'], 'Redis back with old data: never served')
      }
      // Restarted empty: the next start loads nothing.
      await server.command('FLUSHALL')
      await server.command('SAVE')
      await server.kill()
      await call(p.a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm4' }))
      await server.start()
      await waitUp(p)
      for (let i = 0; i < READS; i++) {
        t.same(texts(await history(p.b, TENANT, q)), ['m1', 'm2', 'm3', 'm4'], 'Redis back empty')
      }
    })
  }
}

async function waitUp(p: Pair) {
  const deadline = Date.now() + 10_000
  while (p.a.repository.cacheState().status !== 'up' || p.b.repository.cacheState().status !== 'up') {
    if (Date.now() > deadline) throw new Error('the instances did not use Redis again')
    await new Promise((r) => setTimeout(r, 20))
  }
}
