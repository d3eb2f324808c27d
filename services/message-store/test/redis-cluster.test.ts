// The history cache on a real Redis Cluster of this test's own (3 masters, 3 replicas, from redis-server):
// two instances with REDIS_CLUSTER_NODES run the cross-instance consistency suite, then a checked write+read
// load during which one master is killed: 0 acknowledged messages lost, 0 stale reads, every request answered
// (through Postgres while the dead master's slots have none), and the cache used again after the failover.
import { hasRedisCluster, startRedisCluster } from '@session-runtime/stack'
import t from 'tap'
import { backends, history } from './helpers/app.js'
import { checkedLoad, everyChange, pair, storedOnce, TENANT, waitUp } from './helpers/instances.js'

if (!backends.postgresUrl || !hasRedisCluster()) {
  t.comment('left out: needs a real Postgres, redis-server and redis-cli (to start a Redis Cluster)')
} else {
  t.test('a Redis Cluster of 3 masters and 3 replicas', async (t) => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, t })
    const env = { REDIS_URL: undefined, REDIS_CLUSTER_NODES: cluster.nodesEnv, REDIS_COMMAND_TIMEOUT_MS: '250' }
    const p = await pair(t, env, env)
    t.same(p.a.repository.cacheState(), { kind: 'redis-cluster', status: 'up' }, 'the Cluster client is in use')
    await waitUp(p)

    t.test('every kind of change acknowledged by one instance is read by the other', async (t) => {
      await everyChange(t, p, 'Redis Cluster')
    })

    t.test('a master killed under load', async (t) => {
      let killed = 0
      const load = await checkedLoad(t, p, {
        workers: 8,
        sessionsPerWorker: 6,
        turns: 10,
        racers: 4,
        midway: async () => {
          killed = await cluster.killMaster(0)
          await cluster.waitForFailover()
        },
      })
      t.ok(killed > 0, `master on port ${killed} killed, a replica took over`)
      t.same(load.failures, [], 'every request answered while the slots moved')
      t.equal(load.stale, 0, `0 stale of ${load.reads} reads`)
      const stored = await storedOnce(p, load.acknowledged)
      t.same(
        stored,
        { missing: 0, duplicated: 0 },
        `each of ${load.acknowledged.length} acknowledged messages stored once`,
      )

      // The cache serves every session again once the cluster is whole (ioredis has learnt the new slot map).
      await waitUp(p)
      const started = Date.now()
      const sessions = Array.from({ length: 6 }, (_, i) => ({ flow_id: load.flow_id, session_id: `w0-s${i}` }))
      let served = 0
      while (served < sessions.length && Date.now() - started < 15_000) {
        served = 0
        for (const q of sessions) {
          const before = p.a.repository.stats().hits
          await history(p.a, TENANT, q)
          if (p.a.repository.stats().hits > before) served++
        }
      }
      t.equal(served, sessions.length, `every session served from the cluster again (${Date.now() - started} ms)`)
    })
  })
}
