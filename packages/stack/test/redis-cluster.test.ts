// startRedisCluster: a real Redis Cluster of redis-server processes (needs redis-server and redis-cli; see
// the `needs` of scripts/test.mjs). Started, used through ioredis's Cluster client, a master killed and
// failed over, the node restarted, stopped without leaving a process.
import { Cluster } from 'ioredis'
import t from 'tap'
import { startRedisCluster, waitFor } from '../src/index.js'

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('3 masters and 3 replicas: used by a Cluster client, a master killed and failed over, stopped', async (t) => {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, t })
  t.equal(cluster.nodes.length, 6)
  t.equal(cluster.nodes.filter((node) => node.role === 'master').length, 3, '3 masters')
  t.equal(cluster.nodes.filter((node) => node.role === 'replica').length, 3, '3 replicas')
  t.equal(cluster.nodesEnv, cluster.nodes.map((node) => `127.0.0.1:${node.port}`).join(','))

  const client = new Cluster(
    cluster.nodesEnv.split(',').map((hostPort) => {
      const [host, port] = hostPort.split(':')
      return { host, port: Number(port) }
    }),
    { clusterRetryStrategy: (times) => Math.min(100 * times, 500) },
  )
  t.teardown(() => client.disconnect())
  // keys of every master's slots (by their hash tags)
  const keys = Array.from({ length: 30 }, (_, i) => `{k${i}}:v`)
  for (const key of keys) await client.set(key, `value of ${key}`)
  t.same(
    await Promise.all(keys.map((key) => client.get(key))),
    keys.map((key) => `value of ${key}`),
  )
  const owners = new Set(
    await Promise.all(keys.map(async (key) => (await client.call('CLUSTER', 'KEYSLOT', key)) as number)),
  )
  t.ok(owners.size > 3, 'the keys are in many slots')

  const before = cluster.masters().map((node) => node.port)
  const killed = await cluster.killMaster()
  t.equal(killed, before[0], 'the first master is killed')
  const killedNode = cluster.nodes.find((node) => node.port === killed)
  t.equal(killedNode?.alive, false)
  t.equal(killedNode?.process.signalCode, 'SIGKILL')

  await cluster.waitForFailover(20_000)
  const after = cluster.masters().map((node) => node.port)
  t.equal(after.length, 3, 'three masters again')
  t.notOk(after.includes(killed), 'the killed one is none of them')
  t.equal(after.filter((port) => !before.includes(port)).length, 1, 'one replica was promoted')
  // the replica had every write (WAIT-free, but the writes above finished long before the kill)
  await waitFor(
    async () => {
      try {
        return (await client.get(keys[0] as string)) === `value of ${keys[0]}`
      } catch {
        return false
      }
    },
    'the Cluster client to read through the promoted replica',
    10_000,
    100,
  )
  t.same(
    await Promise.all(keys.map((key) => client.get(key))),
    keys.map((key) => `value of ${key}`),
  )

  await cluster.restart(killed)
  t.equal(cluster.nodes.find((node) => node.port === killed)?.role, 'replica', 'the old master rejoins as a replica')
  t.equal(cluster.masters().length, 3)

  const pids = cluster.nodes.map((node) => node.process.pid as number)
  t.ok(pids.every(alive), 'every node runs')
  client.disconnect()
  await cluster.stop()
  t.same(pids.filter(alive), [], 'no redis-server left')
})

t.test('without replicas: a killed master is down until restarted; the options reach every node', async (t) => {
  const cluster = await startRedisCluster({
    masters: 3,
    replicasPerMaster: 0,
    maxmemory: '16mb',
    policy: 'allkeys-lru',
    t,
  })
  t.equal(cluster.nodes.length, 3)
  for (const node of cluster.nodes) {
    t.match(await node.server.command('CONFIG GET maxmemory-policy'), /allkeys-lru/)
    t.match(await node.server.command('CONFIG GET maxmemory'), /16777216/)
  }
  const killed = await cluster.killMaster(1)
  t.equal(killed, cluster.nodes[1]?.port)
  await t.rejects(cluster.waitForFailover(3_000), /to be whole, every slot served: not within 3000 ms/)
  await cluster.restart(killed)
  t.equal(cluster.masters().length, 3, 'whole again with the master back')
  await t.rejects(cluster.restart(killed), /runs/)
  await t.rejects(cluster.killMaster(5), /no running master number 5/)
})
