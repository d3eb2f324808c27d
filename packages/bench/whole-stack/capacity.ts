/**
 * `pnpm capacity` (or `pnpm --filter @session-runtime/bench capacity`): the figures of the capacity model in
 * docs/scaling.md, measured on this machine.
 *
 * The three services run as processes (startStack, one of each, their default pool sizes), on a Postgres
 * server and a redis-server of this run's own (started from the installed binaries on free ports, removed
 * afterwards), so that every Postgres process, every WAL byte and every byte of Redis memory counted is this
 * run's. Load: the built-in Memory Echo flow (Chat Input → Message History → Prompt → Chat Output, no model:
 * each run reads the session's history and stores 2 messages) through the gateway with an API key, sessions
 * drawn at random from a pool, closed loop (autocannon).
 *
 * Measured over the load (after a warm-up):
 *   - CPU time per run of each process (gateway, run-service, message-store, every process of the Postgres
 *     server, redis-server), from /proc/<pid>/stat (user + system ticks). CPU time, not wall time: other
 *     processes on the cores make runs slower, but hardly change what each run costs.
 *   - Postgres: rows written (count of `messages`), WAL bytes (pg_current_wal_lsn), table + index growth
 *     (pg_total_relation_size of `messages` and `sessions`).
 *   - Redis: INFO memory `used_memory`, and the cached sessions and messages (SCAN + LLEN).
 *   - Connections open under load (from /proc/net/tcp: established, by the port they go to).
 * Then prints what 1k, 10k and 100k runs/s take (an extrapolation from these figures, with its assumptions).
 *
 * Settings (environment): CAPACITY_DURATION (s, default 20), CAPACITY_WARMUP (s, 15: the services' code compiled by then), CAPACITY_CONNECTIONS (20),
 * CAPACITY_SESSIONS (sessions of the pool, 2000), CAPACITY_QUIET_WAIT (s to wait for other processes to go quiet
 * before the warm-up, 30).
 */
import { readFile } from 'node:fs/promises'
import os from 'node:os'
import {
  hasRedisServer,
  postgresBin,
  startPostgresServer,
  startRedisServer,
  startStack,
  type Teardown,
  withPg,
} from '@session-runtime/stack'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { cpuDelta, cpuSnapshot, parentOf, type Snapshot, waitUntilQuiet } from '../src/cpu.js'
import { fetchExpecting, measured, positiveInt } from '../src/load.js'
import { fmt } from '../src/report.js'

const env = process.env
const DURATION = positiveInt(env.CAPACITY_DURATION, 20)
const WARMUP = positiveInt(env.CAPACITY_WARMUP, 15)
const CONNECTIONS = positiveInt(env.CAPACITY_CONNECTIONS, 20)
const SESSIONS = positiveInt(env.CAPACITY_SESSIONS, 2000)
const QUIET_WAIT_S = positiveInt(env.CAPACITY_QUIET_WAIT, 30)
const TENANT = 'capacity'
const API_KEY = `capacity-key-${Date.now().toString(36)}-0123456789`
/** CACHE_TTL_SECONDS and DATABASE_POOL_MAX defaults (services/message-store/src/config.ts, packages/db). */
const CACHE_TTL_S = 3600
const POOL_MAX = 10

const log = (line = '') => console.log(line)

const teardowns: (() => unknown)[] = []
const t: Teardown = { teardown: (fn) => teardowns.push(fn) }
async function cleanUp() {
  for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch((err) => log(`clean-up: ${err}`))
}
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)))

/** Established TCP connections to each of `ports` (IPv4 and IPv6, from /proc/net/tcp*). */
async function connectionsTo(ports: number[]): Promise<Map<number, number>> {
  const counts = new Map(ports.map((p) => [p, 0]))
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').slice(1)
    for (const line of lines) {
      const [, , remote, state] = line.trim().split(/\s+/)
      if (state !== '01' || !remote) continue
      const port = Number.parseInt(remote.split(':').at(-1) ?? '', 16)
      if (counts.has(port)) counts.set(port, (counts.get(port) ?? 0) + 1)
    }
  }
  return counts
}

/** Redis's used_memory and the cached sessions and messages (each history list: a header, then the messages). */
async function redisState(url: string): Promise<{ used: number; sessions: number; messages: number }> {
  const redis = new Redis(url)
  try {
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
    let cursor = '0'
    let sessions = 0
    let messages = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'COUNT', 1000)
      cursor = next
      for (const key of keys) {
        sessions++
        messages += (await redis.llen(key)) - 1
      }
    } while (cursor !== '0')
    return { used, sessions, messages }
  } finally {
    redis.disconnect()
  }
}

interface PgState {
  lsn: string
  messages: number
  sessions: number
  bytes: number
  textBytes: number
  rowBytes: number
}

async function pgState(url: string, schema: string): Promise<PgState> {
  return withPg(url, async (client) => {
    const q = (sql: string) => client.query(sql).then((r) => r.rows[0] as Record<string, string>)
    const s = client.escapeIdentifier(schema)
    const row = await q(
      `SELECT pg_current_wal_lsn()::text AS lsn,
              (SELECT count(*) FROM ${s}.messages) AS messages,
              (SELECT count(*) FROM ${s}.sessions) AS sessions,
              pg_total_relation_size('${schema}.messages') + pg_total_relation_size('${schema}.sessions') AS bytes,
              (SELECT coalesce(sum(octet_length(text)), 0) FROM ${s}.messages) AS text_bytes,
              (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM ${s}.messages m) AS row_bytes`,
    )
    return {
      lsn: String(row.lsn),
      messages: Number(row.messages),
      sessions: Number(row.sessions),
      bytes: Number(row.bytes),
      textBytes: Number(row.text_bytes),
      rowBytes: Number(row.row_bytes),
    }
  })
}

const walBytes = (url: string, from: string, to: string) =>
  withPg(url, (c) => c.query('SELECT pg_wal_lsn_diff($1, $2) AS d', [to, from]).then((r) => Number(r.rows[0].d)))

const startedAt = new Date()
try {
  const bin = await postgresBin()
  if (!bin) throw new Error('no Postgres server binaries under /usr/lib/postgresql: capacity needs its own server')
  if (!hasRedisServer()) throw new Error('no redis-server on PATH: capacity needs its own Redis')
  const postgres = await startPostgresServer(t, bin)
  const redis = await startRedisServer(t, { args: ['--maxmemory-policy', 'allkeys-lru'] })
  log(`capacity: ${postgres.describe()}; own redis-server on port ${redis.port}`)
  const postmaster = postgres.proc?.pid ?? -1

  const stack = await startStack({
    name: 'capacity',
    postgresUrl: postgres.url,
    redisUrl: redis.url,
    keepSchemas: true,
    logLevel: 'warn',
    env: {
      all: { NODE_ENV: 'production' },
      // the services' own default pool sizes, not the harness's small ones
      'message-store': { DATABASE_POOL_MAX: undefined },
      'run-service': { DATABASE_POOL_MAX: undefined },
      gateway: { API_KEYS: `${TENANT}=${API_KEY}`, RATE_LIMIT_MAX: '0', DATA_DIR: 'memory://' },
    },
    readyTimeoutMs: 120_000,
    stopTimeoutMs: 15_000,
  })
  t.teardown(() => stack.stop())
  const { gateway, 'run-service': runService, 'message-store': store } = stack.services
  const schema = stack.schemas.messageStore

  const headers = { 'x-api-key': API_KEY, 'content-type': 'application/json' }
  const body = (session: string) => JSON.stringify({ input_value: 'Hello from the capacity run', session_id: session })
  const first = await fetchExpecting(
    `${gateway.url}/api/v1/run/memory-echo`,
    { method: 'POST', headers, body: body('capacity-check') },
    200,
    'Memory Echo run',
  )
  if (!first.includes('Your messages in this session so far')) throw new Error(`unexpected answer: ${first}`)
  const bodies = Array.from({ length: SESSIONS }, (_, i) => body(`capacity-session-${i}`))
  const load = (seconds: number, onMiddle?: () => void) => {
    if (onMiddle) setTimeout(onMiddle, (seconds * 1000) / 2)
    return autocannon({
      url: gateway.url,
      connections: CONNECTIONS,
      duration: seconds,
      method: 'POST',
      headers,
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            path: '/api/v1/run/memory-echo',
            body: bodies[Math.floor(Math.random() * bodies.length)],
          }),
        },
      ],
    })
  }

  await waitUntilQuiet(QUIET_WAIT_S, {
    waiting: (busy) =>
      log(`waiting up to ${QUIET_WAIT_S} s for other processes to go quiet (${fmt(busy, 2)} cores busy)`),
    stillBusy: (busy) => log(`still ${fmt(busy, 2)} cores busy; measuring anyway`),
  })
  log(`warm-up: ${WARMUP} s, ${CONNECTIONS} connections, ${SESSIONS} sessions`)
  await load(WARMUP)
  const pg0 = await pgState(postgres.url, schema)
  const redis0 = await redisState(redis.url)

  log(`measuring: ${DURATION} s`)
  let connections = new Map<number, number>()
  const before = (await cpuSnapshot()) as Snapshot
  const wallStart = process.hrtime.bigint()
  const result = await load(DURATION, () => {
    void connectionsTo([runService.port, store.port, postgres.port, redis.port]).then((c) => {
      connections = c
    })
  })
  const wall = Number(process.hrtime.bigint() - wallStart) / 1e9
  const after = (await cpuSnapshot()) as Snapshot
  const m = measured(result)
  const runs = result['2xx']
  if (m.errors > 0) log(`note: ${m.errors} requests failed (not counted as runs)`)

  const pg1 = await pgState(postgres.url, schema)
  const redis1 = await redisState(redis.url)
  const wal = await walBytes(postgres.url, pg0.lsn, pg1.lsn)

  // CPU time per run, µs: ticks → cores (share of the machine's time) → seconds over the wall time.
  const pgPids = new Set<number>([postmaster])
  for (const pid of after.procs.keys()) if ((await parentOf(pid)) === postmaster) pgPids.add(pid)
  const { used, toCores } = cpuDelta(before, after)
  const perRun = (match: (pid: number, comm: string) => boolean) => (toCores(used(match)) * wall * 1e6) / runs
  const redisPid = redis.proc?.pid
  const cpu = {
    gateway: perRun((p) => p === gateway.child.pid),
    'run-service': perRun((p) => p === runService.child.pid),
    'message-store': perRun((p) => p === store.child.pid),
    postgres: perRun((p) => pgPids.has(p)),
    redis: perRun((p) => p === redisPid),
  }
  const machine = ((after.busy - before.busy) / (after.total - before.total)) * os.availableParallelism()
  const ours = Object.values(cpu).reduce((s, v) => s + v, 0)
  const loadGen = perRun((p) => p === process.pid)
  const stackPids = new Set([
    gateway.child.pid,
    runService.child.pid,
    store.child.pid,
    redisPid,
    process.pid,
    ...pgPids,
  ])
  // the machine's busy time less this run's processes (short-lived processes of others are not in the snapshots)
  const others = Math.max(0, toCores(after.busy - before.busy - used((p) => stackPids.has(p))))

  const messages = pg1.messages - pg0.messages
  const perMessage = {
    wal: wal / messages,
    disk: (pg1.bytes - pg0.bytes) / messages,
    text: (pg1.textBytes - pg0.textBytes) / messages,
    row: (pg1.rowBytes - pg0.rowBytes) / messages,
  }
  const redisPerMessage = redis1.used / Math.max(1, redis1.messages)
  const redisGrowthPerMessage = (redis1.used - redis0.used) / Math.max(1, redis1.messages - redis0.messages)

  log(
    `\n## Measured ${startedAt.toISOString().slice(0, 10)} (${os.availableParallelism()} cores, ${os.cpus()[0]?.model})`,
  )
  log(`\nMemory Echo through the gateway: ${fmt(runs)} runs in ${fmt(wall, 1)} s = ${fmt(m.reqs)} runs/s`)
  log(`(p50 ${fmt(m.p50)} ms, p99 ${fmt(m.p99)} ms; ${CONNECTIONS} connections, ${SESSIONS} sessions)`)
  log(
    `machine busy ${fmt(machine, 2)} cores, of which other processes (not this run's) ${fmt(others, 2)}; ` +
      `the load generator (autocannon) used ${fmt(loadGen)} µs per run`,
  )
  log('\n| process | CPU µs per run | cores at the measured rate |')
  log('|---|--:|--:|')
  for (const [name, us] of Object.entries(cpu)) log(`| ${name} | ${fmt(us)} | ${fmt((us * m.reqs) / 1e6, 2)} |`)
  log(`| all of the stack | ${fmt(ours)} | ${fmt((ours * m.reqs) / 1e6, 2)} |`)
  log(
    `\nPostgres (${pgPids.size} processes of its own server, CPU from /proc; pg_stat_statements not used): ` +
      `${fmt(messages)} messages written = ${fmt(messages / runs, 2)} per run; ` +
      `${fmt(perMessage.wal)} WAL bytes per message (${fmt(wal / runs)} per run); ` +
      `table + indexes grew ${fmt(perMessage.disk)} bytes per message ` +
      `(row ${fmt(perMessage.row)} bytes, of which text ${fmt(perMessage.text)}); ` +
      `${fmt(pg1.sessions)} sessions rows, ${fmt(pg1.messages)} messages in all`,
  )
  log(
    `Redis: used_memory ${fmt(redis0.used / 1024)} → ${fmt(redis1.used / 1024)} KiB; ${fmt(redis1.sessions)} ` +
      `sessions, ${fmt(redis1.messages)} messages cached ` +
      `(${fmt(redis1.messages / Math.max(1, redis1.sessions), 1)} per session): ` +
      `${fmt(redisPerMessage)} bytes per cached message in all (empty Redis included), ` +
      `${fmt(redisGrowthPerMessage)} bytes per message added under load`,
  )
  const [toRs, toMs, toPg, toRedis] = [runService.port, store.port, postgres.port, redis.port].map(
    (p) => connections.get(p) ?? 0,
  )
  log(
    `Connections established under load: to the run-service ${toRs} (from the gateway), to the message-store ` +
      `${toMs} (from the gateway and the run-service), to Postgres ${toPg} (pools of DATABASE_POOL_MAX ${POOL_MAX} ` +
      `per service), to Redis ${toRedis} (the message-store; the gateway's rate limit is off)`,
  )

  // ------------------------------------------------------------ extrapolation
  const CORE_BUDGET = 0.7 // plan each Node process (one main thread) at 70% of a core
  log('\n## Extrapolated (not measured): what a rate takes, from the per-run figures above')
  log(
    `Assumptions: CPU per run stays as measured (Memory Echo, no model); a Node instance planned at ` +
      `${CORE_BUDGET * 100}% of one core; 2 messages per run; every message written within the cache TTL ` +
      `(${CACHE_TTL_S} s) stays cached (sessions under CACHE_MAX_MESSAGES), at ${fmt(redisGrowthPerMessage)} bytes each.`,
  )
  log(
    '\n| runs/s | gateway | run-service | message-store | Postgres cores | Redis cores | cores in all | messages/s | WAL MB/s | Postgres GB/day | Redis GB |',
  )
  log('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
  for (const rate of [1_000, 10_000, 100_000]) {
    const cores = (us: number) => (us * rate) / 1e6
    const inst = (us: number) => Math.ceil(cores(us) / CORE_BUDGET)
    const msgs = rate * (messages / runs)
    log(
      `| ${fmt(rate)} | ${inst(cpu.gateway)} | ${inst(cpu['run-service'])} | ${inst(cpu['message-store'])} | ` +
        `${fmt(cores(cpu.postgres), 1)} | ${fmt(cores(cpu.redis), 1)} | ${fmt(cores(ours), 1)} | ${fmt(msgs)} | ` +
        `${fmt((msgs * perMessage.wal) / 1e6, 1)} | ${fmt((msgs * perMessage.disk * 86_400) / 1e9)} | ` +
        `${fmt((msgs * CACHE_TTL_S * redisGrowthPerMessage) / 1e9, 1)} |`,
    )
  }
} finally {
  await cleanUp()
}
