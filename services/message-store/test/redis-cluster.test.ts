// The history cache on a real Redis Cluster of this test's own (3 masters, 3 replicas, from redis-server):
// two instances with REDIS_CLUSTER_NODES run the cross-instance consistency suite, then a checked write+read
// load during which one master is killed: 0 acknowledged messages lost, 0 stale reads, every request answered
// (through Postgres while the dead master's slots have none), and the cache used again after the failover.
import { hasRedisCluster, startRedisCluster, startTcpRelay, waitFor } from '@session-runtime/stack'
import t from 'tap'
import { backends, buildTestApp, history, messageInput, store } from './helpers/app.js'
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

  t.test('every node reached through REDIS_CLUSTER_NAT_MAP (a relay per node), then cut off', async (t) => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, t })
    const relays = await Promise.all(cluster.nodes.map((node) => startTcpRelay(node.port, { t })))
    const via = relays.map((relay) => `127.0.0.1:${relay.port}`)
    const app = await buildTestApp(t, {
      env: {
        REDIS_URL: undefined,
        REDIS_CLUSTER_NODES: via.join(','),
        REDIS_CLUSTER_NAT_MAP: cluster.nodes.map((node, i) => `127.0.0.1:${node.port}=${via[i]}`).join(','),
        REDIS_COMMAND_TIMEOUT_MS: '250',
      },
    })
    const ready = async () => (await app.inject({ method: 'GET', url: '/ready' })).json()
    await waitFor(() => app.repository.cacheState().status === 'up', 'the cache up', 10_000, 20)
    t.match(await ready(), { status: 'ok', redis: 'up', cache: 'redis-cluster' }, '/ready reports the cluster')
    const q = { flow_id: '8b7c0e8e-0c8e-4a55-9d1f-6f5c1c2f3a10', session_id: 'nat' }
    await store(app, TENANT, [messageInput({ ...q, text: 'one' })])
    await history(app, TENANT, q)
    const hits = app.repository.stats().hits
    t.same(
      (await history(app, TENANT, q)).map((m) => m.text),
      ['one'],
    )
    t.ok(app.repository.stats().hits > hits, 'served from the cluster, through the relays')
    // the client learns the masters from the cluster (their own ports) and reaches each through its relay:
    // sessions enough to have keys on every master
    for (let i = 0; i < 24; i++) {
      const other = { ...q, session_id: `nat-${i}` }
      await store(app, TENANT, [messageInput({ ...other, text: 'x' })])
      await history(app, TENANT, other)
    }
    const masters = new Set(cluster.masters().map((node) => node.port))
    t.ok(
      relays.every((relay, i) => !masters.has(cluster.nodes[i]?.port as number) || relay.connections > 0),
      'every master is connected to through its relay',
    )

    for (const relay of relays) relay.cut()
    await store(app, TENANT, [messageInput({ ...q, text: 'two' })])
    t.same(
      (await history(app, TENANT, q)).map((m) => m.text),
      ['one', 'two'],
      'cut off: read from Postgres',
    )
    // down only if no connection reaches a node around the relays (the announced addresses are mapped)
    await waitFor(() => app.repository.cacheState().status === 'down', 'the cache down', 10_000, 20)
    t.match(await ready(), { status: 'ok', redis: 'down' }, 'still ready, Redis reported down')

    for (const relay of relays) relay.restore()
    await waitFor(() => app.repository.cacheState().status === 'up', 'the cache up again', 15_000, 20)
    t.same(
      (await history(app, TENANT, q)).map((m) => m.text),
      ['one', 'two'],
      'nothing stale after the cut',
    )
  })
}
