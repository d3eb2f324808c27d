// Several message-store instances on one Postgres: after any instance acknowledges a change (write, edit,
// rename, delete, session delete, flow delete, failed-mark), no instance serves a history that lacks it.
// Instance A acknowledges, instance B (whose cache was warm with the old state) reads. Caches: one Redis
// reached by both; one Redis that A reaches through a TCP relay which is then frozen, cut, or slowed (A cut off
// from Redis, B not); Redis restarted empty or with old data; no Redis at all (each instance its own in-process
// cache). Every read of B is compared with Postgres read directly: the count of stale reads must be 0.
import { randomUUID } from 'node:crypto'
import {
  hasRedisServer,
  type RedisServer,
  startRedisServer,
  startTcpRelay,
  type TcpRelay,
} from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { backends, history, messageInput } from './helpers/app.js'
import { call, everyChange, type Pair, pair, TENANT, texts, waitUp } from './helpers/instances.js'

const COMMAND_TIMEOUT_MS = 200
const READS = 5

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
