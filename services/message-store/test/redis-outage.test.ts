// Redis outages, against a redis-server this file starts itself (on a free port) and
// then kills, stops or restarts: reads and writes keep being served from Postgres with
// no error to the caller, /ready reports Redis down and up, and when Redis comes back
// (empty, or with its old data restored) no stale entry is ever served.
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { Database } from '@session-runtime/db'
import { hasRedisServer, RedisServer, sleep, startRedisServer, testStorageEnv } from '@session-runtime/stack'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import type { HistoryBackend } from '../src/cache/history-backend.js'
import { loadConfig } from '../src/config.js'
import { HistoryService, historyKey } from '../src/domain/history-service.js'
import {
  buildTestApp,
  deleteKeys,
  dropSchema,
  history,
  INTERNAL_TOKEN,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  type TestApp,
  uniqueName,
  waitFor,
} from './helpers/app.js'

const TENANT = 'tenant-a'
const COMMAND_TIMEOUT_MS = 200
const texts = (list: { text: string }[]) => list.map((m) => m.text)

/** A plain client of `server`, for looking at what Redis holds. */
async function raw<T>(server: RedisServer, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  await r.connect()
  try {
    return await fn(r)
  } finally {
    r.disconnect()
  }
}

function appOn(t: Test, server: RedisServer) {
  return buildTestApp(t, {
    env: { REDIS_URL: server.url, REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) },
  })
}

async function ready(app: TestApp) {
  const res = await app.inject({ method: 'GET', url: '/ready' })
  return { statusCode: res.statusCode, ...(res.json() as { status: string; redis: string; cache: string }) }
}

async function edit(app: TestApp, id: string, body: Record<string, unknown>) {
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${id}`,
    headers: internalHeaders(TENANT),
    payload: body,
  })
  if (res.statusCode !== 200) throw new Error(`edit: ${res.statusCode} ${res.body}`)
}

async function remove(app: TestApp, ids: string[]) {
  const res = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(TENANT),
    payload: ids,
  })
  if (res.statusCode !== 204) throw new Error(`delete: ${res.statusCode} ${res.body}`)
}

/** A history read that must succeed quickly, whatever Redis does. */
async function read(app: TestApp, flow_id: string, limit = 100) {
  const started = Date.now()
  const list = await history(app, TENANT, { flow_id, session_id: 's', limit })
  const ms = Date.now() - started
  if (ms > 2000) throw new Error(`a history read took ${ms} ms`)
  return texts(list)
}

const counters = (app: TestApp) => ({ hits: app.repository.stats().hits, misses: app.repository.stats().misses })
function delta(app: TestApp, before: { hits: number; misses: number }) {
  const now = counters(app)
  return { hits: now.hits - before.hits, misses: now.misses - before.misses }
}

/** Two messages, cached and served from the cache. */
async function warm(t: Test, app: TestApp) {
  const flow_id = randomUUID()
  const stored = await store(app, TENANT, [
    messageInput({ flow_id, session_id: 's', text: 'm1' }),
    messageInput({ flow_id, session_id: 's', sender: 'Machine', sender_name: 'AI', text: 'm2' }),
  ])
  const before = counters(app)
  t.same(await read(app, flow_id), ['m1', 'm2'])
  t.same(delta(app, before), { hits: 1, misses: 0 }, 'served from Redis')
  t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'up', cache: 'redis' })
  return { flow_id, ids: stored.map((m) => m.id) as [string, string] }
}

/** After Redis is back: the state is right, first from Postgres, then from the cache again. */
async function backAndConsistent(t: Test, app: TestApp, flow_id: string, expected: string[]) {
  await waitFor(() => app.historyCache?.status() === 'up', 10_000)
  t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'up' }, '/ready: redis up again')
  t.same(await read(app, flow_id), expected, 'the first read after the outage')
  const before = counters(app)
  t.same(await read(app, flow_id), expected, 'a read served from Redis again')
  t.same(delta(app, before), { hits: 1, misses: 0 })
}

if (hasRedisServer()) {
  t.comment(`storage: ${storageKind}, cache: a redis-server started by this test`)

  t.test('Redis killed, writes while it is down, restarted empty', async (t) => {
    const server = await startRedisServer(t)
    const app = await appOn(t, server)
    const { flow_id, ids } = await warm(t, app)

    await server.kill()
    t.same(await read(app, flow_id), ['m1', 'm2'], 'a read right after the kill')
    await waitFor(() => app.historyCache?.status() === 'down')
    t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'down' }, '/ready: redis down, still ready')

    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm3' })])
    await edit(app, ids[0], { text: 'm1 edited' })
    await remove(app, [ids[1]])
    t.same(await read(app, flow_id), ['m1 edited', 'm3'], 'writes while Redis is down are read back')
    t.same(await read(app, flow_id, 1), ['m3'])

    await server.start()
    await backAndConsistent(t, app, flow_id, ['m1 edited', 'm3'])
  })

  t.test(
    'Redis restarted with an old snapshot (SAVE, then writes, then a kill): its entries are not served',
    async (t) => {
      const server = await startRedisServer(t, { persistent: true })
      const app = await appOn(t, server)
      const { flow_id, ids } = await warm(t, app)
      const key = `${app.keyPrefix}h:{${historyKey(TENANT, flow_id, 's')}}`
      const snapshot = await raw(server, (r) => r.lrange(key, 0, -1))
      t.equal(snapshot.length, 3, 'Redis holds the header and both messages')
      await raw(server, (r) => r.save())

      // After the snapshot, while Redis is up: the live entry moves on ...
      await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm3' })])
      t.same(await read(app, flow_id), ['m1', 'm2', 'm3'])
      // ... and while it is down, only Postgres changes.
      await server.kill()
      await waitFor(() => app.historyCache?.status() === 'down')
      await edit(app, ids[1], { text: 'm2 edited' })
      await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm4' })])
      t.same(await read(app, flow_id), ['m1', 'm2 edited', 'm3', 'm4'])

      await server.start()
      t.same(await raw(server, (r) => r.lrange(key, 0, -1)), snapshot, 'the stale entry came back with the snapshot')
      await backAndConsistent(t, app, flow_id, ['m1', 'm2 edited', 'm3', 'm4'])
      const now = await raw(server, (r) => r.lrange(key, 0, -1))
      t.ok(
        Number(now[0]?.split('|')[0]) > Number(snapshot[0]?.split('|')[0]),
        'the restored entry was never served, and is replaced by the current state',
      )
    },
  )

  t.test('Redis shut down with SHUTDOWN SAVE, writes while it is down, restarted with its data', async (t) => {
    const server = await startRedisServer(t, { persistent: true })
    const app = await appOn(t, server)
    const { flow_id, ids } = await warm(t, app)
    const exited = once(server.proc as ChildProcess, 'exit')
    await raw(server, (r) => r.call('SHUTDOWN', 'SAVE')).catch(() => {})
    await exited
    await waitFor(() => app.historyCache?.status() === 'down')
    t.match(await ready(app), { statusCode: 200, redis: 'down' })

    await edit(app, ids[0], { text: 'm1 edited' })
    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm3' })])
    t.same(await read(app, flow_id), ['m1 edited', 'm2', 'm3'])

    await server.start()
    const key = `${app.keyPrefix}h:{${historyKey(TENANT, flow_id, 's')}}`
    t.equal((await raw(server, (r) => r.lrange(key, 0, -1))).length, 3, 'the old entry (m1, m2) is back in Redis')
    await backAndConsistent(t, app, flow_id, ['m1 edited', 'm2', 'm3'])
  })

  t.test('Redis slow (SIGSTOP): served from Postgres meanwhile; after SIGCONT no stale entry', async (t) => {
    const server = await startRedisServer(t)
    const app = await appOn(t, server)
    const { flow_id, ids } = await warm(t, app)

    server.freeze()
    try {
      t.same(await read(app, flow_id), ['m1', 'm2'], 'a read while Redis hangs: after a command timeout, from Postgres')
      t.equal(app.historyCache?.status(), 'down', 'the cache is skipped for a while')
      t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'down' })
      await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm3' })])
      await edit(app, ids[0], { text: 'm1 edited' })
      t.same(await read(app, flow_id), ['m1 edited', 'm2', 'm3'])
      const started = Date.now()
      for (let i = 0; i < 5; i++) await read(app, flow_id)
      t.ok(Date.now() - started < 1000, 'reads do not wait for the hung Redis once it has timed out')
      await sleep(COMMAND_TIMEOUT_MS * 2)
    } finally {
      // Resumed whatever happened above: a stopped Redis would hang the cleanup.
      server.thaw()
    }

    // The old entry (m1, m2) is still in Redis: serving it now would be stale.
    await backAndConsistent(t, app, flow_id, ['m1 edited', 'm2', 'm3'])
    await remove(app, [ids[1]])
    t.same(await read(app, flow_id), ['m1 edited', 'm3'], 'and the cache follows writes again')
  })

  t.test('a read that read Postgres before an outage never fills the cache after it', async (t) => {
    const server = await startRedisServer(t)
    const app = await appOn(t, server)
    const { flow_id, ids } = await warm(t, app)
    // A history service on the app's database and cache whose next query, once done,
    // waits for a latch: the reader has its token and its (soon old) Postgres state.
    let pause: { reached: () => void; gate: Promise<void> } | undefined
    const db: Database = {
      kind: app.db.kind,
      schema: app.db.schema,
      async query(sql, params) {
        const result = await app.db.query(sql, params)
        // Pauses the history read itself, not the version lookup sent with the cache read.
        if (sql.startsWith('SELECT version FROM sessions')) return result as never
        const p = pause
        pause = undefined
        if (p) {
          p.reached()
          await p.gate
        }
        return result as never
      },
      transaction: (fn) => app.db.transaction(fn),
      close: async () => {},
    }
    const reader = new HistoryService(db, app.historyCache as HistoryBackend, {
      maxEntries: 200,
      maxMessageBytes: 16_384,
    })
    await edit(app, ids[0], { text: 'm1 edited' })
    let reached!: () => void
    let release!: () => void
    const reachedP = new Promise<void>((r) => {
      reached = r
    })
    pause = { reached, gate: new Promise<void>((r) => (release = r)) }
    const raced = reader.read(TENANT, { flow_id, session_id: 's', limit: 100, order: 'ASC' })
    await reachedP

    // Meanwhile Redis goes away, a write lands in Postgres only, Redis comes back.
    await server.kill()
    await waitFor(() => app.historyCache?.status() === 'down')
    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm3' })])
    await server.start()
    await waitFor(() => app.historyCache?.status() === 'up', 10_000)

    release()
    t.same(
      texts(JSON.parse(String(await raced))),
      ['m1 edited', 'm2'],
      'the raced read had read Postgres before the write',
    )
    await backAndConsistent(t, app, flow_id, ['m1 edited', 'm2', 'm3'])
  })

  t.test('the app starts while Redis is down and uses it once it is up', async (t) => {
    const server = await RedisServer.create(t)
    const schema = uniqueName('t')
    const keyPrefix = `${uniqueName('test')}:`
    const config = loadConfig({
      ...testStorageEnv(schema, INTERNAL_TOKEN),
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: keyPrefix,
      REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
    } as NodeJS.ProcessEnv)
    const built = await buildApp(config)
    await built.ready()
    const app = Object.assign(built, { schema, keyPrefix })
    t.teardown(async () => {
      await app.close()
      await dropSchema(schema)
      await deleteKeys(server.url, keyPrefix)
    })
    t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'down', cache: 'redis' })
    const flow_id = randomUUID()
    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm1' })])
    t.same(await read(app, flow_id), ['m1'])

    await server.start()
    await waitFor(() => app.historyCache?.status() === 'up', 10_000)
    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm2' })])
    await backAndConsistent(t, app, flow_id, ['m1', 'm2'])
  })
} else {
  t.comment('redis-server is not installed: this file covered the in-process cache only (no Redis outage was tested)')

  t.test('without Redis: the in-process cache, reads and writes, /ready', async (t) => {
    const app = await buildTestApp(t, { cache: 'memory' })
    t.match(await ready(app), { statusCode: 200, status: 'ok', redis: 'disabled', cache: 'memory' })
    const flow_id = randomUUID()
    const [m1] = await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm1' })])
    t.same(await read(app, flow_id), ['m1'])
    await edit(app, m1?.id as string, { text: 'm1 edited' })
    await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm2' })])
    t.same(await read(app, flow_id), ['m1 edited', 'm2'])
    const before = counters(app)
    t.same(await read(app, flow_id), ['m1 edited', 'm2'])
    t.same(delta(app, before), { hits: 1, misses: 0 })
  })
}
