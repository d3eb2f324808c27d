// A Redis Cluster of a test's own: real redis-server processes (RedisServer, cluster-enabled) on free ports of
// 127.0.0.1, joined by `redis-cli --cluster create`, with a short node timeout so that a replica takes over
// a killed master within a few seconds. Nothing persisted but each node's cluster configuration (nodes.conf
// in its own temporary directory, so that a restarted node rejoins). Killed and removed by `stop`, when the
// test ends (given `t`), and when the process exits.
import { type ChildProcess, execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { type Teardown, waitFor } from './child.js'
import { freePorts } from './free-ports.js'
import { hasRedisServer, RedisServer } from './redis-server.js'

const run = promisify(execFile)

/** Every hash slot of a cluster. */
const SLOTS = 16384

export interface RedisClusterOptions {
  /** Masters, each owning a share of the slots; default 3 (a cluster needs at least 3). */
  masters?: number
  /** Replicas of each master; default 1. With 0 a killed master's slots stay down until it is restarted. */
  replicasPerMaster?: number
  /** `maxmemory` of every node (e.g. `32mb`); default none. */
  maxmemory?: string
  /** `maxmemory-policy` of every node (e.g. `allkeys-lru`); default Redis's (`noeviction`). */
  policy?: string
  /** `cluster-node-timeout`: how long a node may not answer before it is failed over; default 1500 ms. */
  nodeTimeoutMs?: number
  /** Bound of the start, and of each wait for the cluster to be whole again; default 30 s. */
  timeoutMs?: number
  /** Stopped when this test ends. */
  t?: Teardown
}

export type RedisClusterRole = 'master' | 'replica'

export interface RedisClusterNode {
  readonly port: number
  /** Its role when last looked at (at the start, by `killMaster`, `waitForFailover`, `restart`, `roles`). */
  role: RedisClusterRole
  /** Whether it runs (false after `killMaster`, until `restart`). */
  alive: boolean
  /** The running (or last) redis-server process. */
  readonly process: ChildProcess
  /** The server itself: `freeze()` / `thaw()` (SIGSTOP / SIGCONT) a node, `command(line)`. */
  readonly server: RedisServer
}

export interface RedisCluster {
  nodes: RedisClusterNode[]
  /** `127.0.0.1:port,...` of every node: REDIS_CLUSTER_NODES of a service. */
  nodesEnv: string
  /** The running masters, in the order of `nodes`. */
  masters(): RedisClusterNode[]
  /** Asks every running node its role (updating `nodes[].role`). */
  roles(): Promise<void>
  /** SIGKILLs the `index`th running master (default the first); resolves with its port once it has exited. */
  killMaster(index?: number): Promise<number>
  /**
   * Waits until every running node says `cluster_state:ok` with every slot served, as many masters run as
   * the cluster started with (a replica promoted in place of each killed master) and every replica is in
   * sync with its master.
   */
  waitForFailover(timeoutMs?: number): Promise<void>
  /** Starts a killed node again on its port (it rejoins; a former master as a replica) and waits as `waitForFailover`. */
  restart(port: number): Promise<void>
  /** Kills every node and removes their directories. */
  stop(): Promise<void>
}

/** One command to one node, on a connection of its own that fails at once when the node is down. */
async function ask(port: number, ...command: [string, ...string[]]): Promise<unknown> {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    connectTimeout: 1_000,
    commandTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.call(...command)
  } finally {
    redis.disconnect()
  }
}

/** CLUSTER INFO of one node, as fields. */
async function clusterInfo(port: number): Promise<Record<string, string>> {
  const text = String(await ask(port, 'CLUSTER', 'INFO'))
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((line) => line.includes(':'))
      .map((line) => line.split(':', 2) as [string, string]),
  )
}

/** ROLE of one node: its role and, for a replica, whether its link to the master is up and synced. */
async function roleOf(port: number): Promise<{ role: RedisClusterRole; synced: boolean }> {
  const reply = (await ask(port, 'ROLE')) as unknown[]
  if (reply[0] === 'master') return { role: 'master', synced: true }
  return { role: 'replica', synced: reply[3] === 'connected' }
}

/**
 * Starts `masters × (1 + replicasPerMaster)` redis-servers with cluster mode on, joins them with
 * `redis-cli --cluster create` and waits until the cluster is whole (see `waitForFailover`).
 */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masterCount = opts.masters ?? 3
  const replicas = opts.replicasPerMaster ?? 1
  if (masterCount < 3) throw new Error(`a Redis Cluster needs at least 3 masters, not ${masterCount}`)
  const timeoutMs = opts.timeoutMs ?? 30_000
  const count = masterCount * (1 + replicas)
  // The cluster bus's own port (cluster-port, Redis 7), so that port + 10000 need not be free (nor exist).
  const ports = await freePorts(count * 2)
  const ends: (() => unknown)[] = []
  const collector: Teardown = { teardown: (fn) => ends.push(fn) }
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await Promise.all(ends.map((end) => end()))
  }
  opts.t?.teardown(stop)

  const args = (busPort: number) => {
    const list = [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      String(opts.nodeTimeoutMs ?? 1500),
      '--cluster-port',
      String(busPort),
      // a replica takes over however long it was cut off from its master (the test decides what is stale)
      '--cluster-replica-validity-factor',
      '0',
    ]
    if (opts.maxmemory) list.push('--maxmemory', opts.maxmemory)
    if (opts.policy) list.push('--maxmemory-policy', opts.policy)
    return list
  }

  const nodes: RedisClusterNode[] = []
  try {
    const servers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        // persistent: a directory of its own, for nodes.conf (nothing else is saved: --save "")
        RedisServer.create(collector, {
          persistent: true,
          port: ports[i] as number,
          args: args(ports[count + i] as number),
        }),
      ),
    )
    await Promise.all(servers.map((server) => server.start(timeoutMs)))
    for (const server of servers) {
      nodes.push({
        port: server.port,
        role: 'master',
        alive: true,
        get process() {
          return server.proc as ChildProcess
        },
        server,
      })
    }
    try {
      await run(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...servers.map((server) => `127.0.0.1:${server.port}`),
          '--cluster-replicas',
          String(replicas),
          '--cluster-yes',
        ],
        { timeout: timeoutMs },
      )
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
      throw new Error(`redis-cli --cluster create failed: ${(error as Error).message}\n${stdout}${stderr}`)
    }
  } catch (error) {
    await stop()
    throw error
  }

  const running = () => nodes.filter((node) => node.alive)

  async function roles(): Promise<void> {
    await Promise.all(
      running().map(async (node) => {
        node.role = (await roleOf(node.port)).role
      }),
    )
  }

  /** Whether the cluster is whole, as every running node sees it. */
  async function whole(): Promise<boolean> {
    try {
      const seen = await Promise.all(
        running().map(async (node) => ({ node, info: await clusterInfo(node.port), ...(await roleOf(node.port)) })),
      )
      const ok = seen.every(
        ({ info, synced }) =>
          synced &&
          info.cluster_state === 'ok' &&
          info.cluster_slots_assigned === String(SLOTS) &&
          info.cluster_slots_ok === String(SLOTS),
      )
      if (!ok || seen.filter(({ role }) => role === 'master').length !== masterCount) return false
      for (const { node, role } of seen) node.role = role
      return true
    } catch {
      return false
    }
  }

  async function waitForFailover(ms = timeoutMs): Promise<void> {
    await waitFor(whole, `the Redis Cluster (${nodesEnv}) to be whole, every slot served`, ms, 100)
  }

  const nodesEnv = nodes.map((node) => `127.0.0.1:${node.port}`).join(',')
  try {
    await waitForFailover()
  } catch (error) {
    await stop()
    throw error
  }

  const masters = () => running().filter((node) => node.role === 'master')

  return {
    nodes,
    nodesEnv,
    masters,
    roles,
    async killMaster(index = 0) {
      await roles()
      const node = masters()[index]
      if (!node) throw new Error(`no running master number ${index} (${masters().length} run)`)
      node.alive = false
      await node.server.kill()
      return node.port
    },
    waitForFailover,
    async restart(port) {
      const node = nodes.find((n) => n.port === port)
      if (!node) throw new Error(`no node of this cluster on port ${port}`)
      if (node.alive) throw new Error(`the node on port ${port} runs`)
      await node.server.start(timeoutMs)
      node.alive = true
      await waitForFailover()
    },
    stop,
  }
}

/** Whether this machine has the programs of a Redis Cluster: redis-server and redis-cli. */
export const hasRedisCluster = (): boolean => hasRedisServer() && spawnSync('redis-cli', ['--version']).status === 0
