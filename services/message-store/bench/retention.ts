/**
 * `pnpm bench:retention`: a retention sweep of 100,000 expired sessions on the real Postgres, and what it does to
 * the latency of history reads and writes running meanwhile.
 *
 * Seeds (SQL, schema `bench_retention`) BENCH_EXPIRED sessions (100,000) idle for 3 days with 2–5 messages each,
 * and BENCH_ACTIVE (2,000) active sessions with 10 messages each, and a tenant default of 1 day. The store runs
 * in a child process (bench/server.ts, timer off), the load (autocannon: history reads and single-message writes
 * on the active sessions) in this one. Measures the load alone for BENCH_DURATION s (15), then the same load while
 * POST /api/v1/monitor/retention/sweep runs, until the sweep answers, then the load alone again; then seeds the
 * expired sessions again and times a sweep with no load. Each run says how many cores other processes on the
 * machine used meanwhile (noise). Prints the figures; writes no docs.
 *
 * Settings (environment): BENCH_EXPIRED, BENCH_ACTIVE, BENCH_DURATION, BENCH_WARMUP (3), BENCH_READERS (16
 * connections), BENCH_WRITERS (4 connections), BENCH_POOL_MAX (16), RETENTION_SWEEP_BATCH_SIZE (500),
 * BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (redis://127.0.0.1:6379).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuDelta, cpuSnapshot, fmt, positiveInt, type Snapshot, waitUntilQuiet } from '@session-runtime/bench'
import { createPgDatabase } from '@session-runtime/db'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import {
  childExecArgv,
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  deleteRedisKeys,
  dropSchemas,
  probeBackends,
  redisVersion,
} from '@session-runtime/stack'
import autocannon from 'autocannon'
import { migrateMessageStore, STATEMENT_PREFIX } from '../src/plugins/app/database.js'
import { messageInput, type SessionRef, TENANT } from './dataset.js'
import type { ServerReply, ServerRequest } from './server.js'

const env = process.env
const EXPIRED = positiveInt(env.BENCH_EXPIRED, 100_000)
const ACTIVE = positiveInt(env.BENCH_ACTIVE, 2_000)
const DURATION = positiveInt(env.BENCH_DURATION, 15)
const WARMUP = positiveInt(env.BENCH_WARMUP, 3)
const READERS = positiveInt(env.BENCH_READERS, 16)
const WRITERS = positiveInt(env.BENCH_WRITERS, 4)
const POOL_MAX = positiveInt(env.BENCH_POOL_MAX, 16)
const BATCH = positiveInt(env.RETENTION_SWEEP_BATCH_SIZE, 500)
const DATABASE_URL = env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL
const REDIS_URL = env.BENCH_REDIS_URL ?? DEFAULT_REDIS_URL
const SCHEMA = 'bench_retention'
const FLOWS = 20
const INTERNAL_TOKEN = `bench-${randomBytes(12).toString('hex')}`
const SERVER = join(fileURLToPath(new URL('.', import.meta.url)), 'server.ts')
const log = (line: string) => console.log(line)

const [hasPostgres, hasRedis] = await probeBackends(DATABASE_URL, REDIS_URL)
if (!hasPostgres) {
  log(`bench:retention needs a real Postgres (none reachable at ${new URL(DATABASE_URL).host})`)
  process.exit(1)
}
const redisPrefix = `bench-retention:${process.pid}:`

// ---------------------------------------------------------------- data

await dropSchemas(DATABASE_URL, [SCHEMA])
const db = await createPgDatabase({
  connectionString: DATABASE_URL,
  schema: SCHEMA,
  max: 1,
  statementTimeoutMs: 30 * 60_000,
  connectTimeoutMs: 5000,
  statementPrefix: STATEMENT_PREFIX,
})
await migrateMessageStore(db)
const { rows: version } = await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")

log(`seeding ${EXPIRED} expired sessions (2–5 messages each) and ${ACTIVE} active ones (10 messages each) ...`)
let t0 = performance.now()
/** Messages of `sessions` sessions named `prefix-N`, `count(s)` each, the last one `age` ago, interleaved in time. */
async function seedMessages(prefix: string, sessions: number, count: string, age: string) {
  await db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text, properties)
     SELECT md5($2 || '-' || s || '-' || j)::uuid, $1, md5('bench-flow-' || (s % ${FLOWS}))::uuid, $2 || '-' || s,
       now() - $4::interval - (5 - j) * interval '1 minute' + s * interval '1 millisecond',
       CASE WHEN j % 2 = 0 THEN 'User' ELSE 'Machine' END, CASE WHEN j % 2 = 0 THEN 'User' ELSE 'AI' END,
       CASE WHEN j % 2 = 0 THEN 'How do I reset my password?'
         ELSE 'Go to Settings > Security, choose "Reset password" and follow the link we email you.' END,
       CASE WHEN j % 2 = 0 THEN '{}'::jsonb
         ELSE '{"source": {"id": "ChatOutput-Zk3pQ", "display_name": "Chat Output"}, "state": "complete"}'::jsonb END
     FROM generate_series(0, $3::int - 1) AS s, LATERAL generate_series(0, ${count} - 1) AS j
     ORDER BY j, s`,
    [TENANT, prefix, sessions, age],
  )
}
await seedMessages('expired', EXPIRED, '2 + s % 4', '3 days')
await seedMessages('active', ACTIVE, '10', '1 hour')
/** The `sessions` rows of the seeded messages that have none yet. */
const summarize = () =>
  db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT tenant_id, flow_id, session_id, count(*), min(ts), max(ts),
       (array_agg(text ORDER BY ts DESC, seq DESC))[1], nextval('session_version_seq')
     FROM messages GROUP BY tenant_id, flow_id, session_id ORDER BY min(seq)
     ON CONFLICT (tenant_id, flow_id, session_id) DO NOTHING`,
  )
await summarize()
await db.query('INSERT INTO retention (tenant_id, flow_id, max_idle_seconds) VALUES ($1, NULL, 86400)', [TENANT])
await db.query('ANALYZE messages')
await db.query('ANALYZE sessions')
const counts = async () => {
  const { rows } = await db.query<{ sessions: string; messages: string; expired: string }>(
    `SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM sessions WHERE session_id LIKE 'expired-%') AS expired`,
  )
  return rows[0] as { sessions: string; messages: string; expired: string }
}
const before = await counts()
log(`  ${before.sessions} sessions, ${before.messages} messages in ${fmt((performance.now() - t0) / 1000, 1)} s`)
const active: SessionRef[] = Array.from({ length: ACTIVE }, (_, s) => ({
  flowId: '',
  sessionId: `active-${s}`,
}))
{
  const { rows } = await db.query<{ session_id: string; flow_id: string }>(
    `SELECT session_id, flow_id::text FROM sessions WHERE session_id LIKE 'active-%'`,
  )
  const flows = new Map(rows.map((r) => [r.session_id, r.flow_id]))
  for (const ref of active) ref.flowId = flows.get(ref.sessionId) as string
}

// ---------------------------------------------------------------- the store

function nextMessage(child: ChildProcess): Promise<ServerReply> {
  return new Promise((resolve, reject) => {
    child.once('message', (msg: ServerReply) =>
      msg.type === 'error' ? reject(new Error(`bench server: ${msg.message}`)) : resolve(msg),
    )
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
  })
}

const child = fork(SERVER, [], {
  execArgv: childExecArgv(undefined),
  env: { ...env, NODE_ENV: 'production' },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
})
const ready = nextMessage(child)
child.send({
  type: 'start',
  mode: 'store',
  env: {
    LOG_LEVEL: 'warn',
    INTERNAL_TOKEN,
    DATABASE_URL,
    DATABASE_SCHEMA: SCHEMA,
    DATABASE_POOL_MAX: String(POOL_MAX),
    REDIS_URL: hasRedis ? REDIS_URL : undefined,
    REDIS_KEY_PREFIX: redisPrefix,
    RETENTION_SWEEP_INTERVAL_SECONDS: '0',
    RETENTION_SWEEP_BATCH_SIZE: String(BATCH),
  },
} satisfies ServerRequest)
const started = await ready
if (started.type !== 'ready') throw new Error(`bench server: unexpected ${started.type}`)
const url = `http://127.0.0.1:${started.port}`
const headers = { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN, [TENANT_HEADER]: TENANT }

// ---------------------------------------------------------------- load

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)] as T
let written = 0
const loads = {
  reads: {
    connections: READERS,
    requests: [
      {
        setupRequest: (req: autocannon.Request) => {
          const ref = pick(active)
          return {
            ...req,
            path: `/internal/history?flow_id=${ref.flowId}&session_id=${ref.sessionId}&limit=50`,
          }
        },
      },
    ],
  },
  writes: {
    connections: WRITERS,
    method: 'POST' as const,
    requests: [
      {
        setupRequest: (req: autocannon.Request) => {
          written++
          return {
            ...req,
            path: '/internal/messages',
            body: JSON.stringify(messageInput(pick(active), written, randomUUID())),
          }
        },
      },
    ],
  },
}

interface Figures {
  rps: number
  p50: number
  p99: number
  errors: number
}

/** Runs one load until `until` resolves (or for `seconds`). */
function run(load: (typeof loads)['reads' | 'writes'], seconds: number, until?: Promise<unknown>): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        headers: { ...headers, ...(load === loads.writes ? { 'content-type': 'application/json' } : {}) },
        duration: seconds,
        ...load,
      },
      (err, result) => {
        if (err) return reject(err)
        resolve({
          rps: result['2xx'] / result.duration,
          p50: result.latency.p50,
          p99: result.latency.p99,
          errors: result.non2xx + result.errors + result.timeouts,
        })
      },
    )
    until?.then(() => instance.stop())
  })
}

const QUIET_WAIT_S = Number(env.BENCH_QUIET_WAIT ?? 60)
/** Waits (up to BENCH_QUIET_WAIT s) for other processes on the machine to go quiet. */
const waitQuiet = () =>
  waitUntilQuiet(QUIET_WAIT_S, {
    waiting: (busy) => log(`  waiting for the machine to be quiet (${fmt(busy * 100)}% of a core in use) ...`),
    stillBusy: (busy) => log(`  warning: still ${fmt(busy * 100)}% of a core busy elsewhere; measuring anyway`),
  })

/** Cores used meanwhile by processes that are neither this one, the store, Postgres nor Redis (noise). */
function otherCores(a: Snapshot | undefined, b: Snapshot | undefined): number {
  if (!a || !b) return Number.NaN
  const { used, toCores } = cpuDelta(a, b)
  const ours = used(
    (pid, comm) => pid === process.pid || pid === child.pid || comm === 'postgres' || comm.startsWith('redis-server'),
  )
  return toCores(Math.max(0, b.busy - a.busy - ours))
}

async function both(seconds: number, until?: Promise<unknown>): Promise<Figures[] & { other: number }> {
  const a = await cpuSnapshot()
  const figures = await Promise.all([run(loads.reads, seconds, until), run(loads.writes, seconds, until)])
  return Object.assign(figures, { other: otherCores(a, await cpuSnapshot()) })
}

log(`warm-up ${WARMUP} s ...`)
await both(WARMUP)
await waitQuiet()
log(`load alone, ${DURATION} s ...`)
const alone = await both(DURATION)

log('load while a sweep runs ...')
let sweepSeconds = 0
let swept: { deleted_sessions: number; deleted_messages: number } | undefined
const sweep = (async () => {
  await new Promise((r) => setTimeout(r, 1000))
  t0 = performance.now()
  const res = await fetch(`${url}/api/v1/monitor/retention/sweep`, { method: 'POST', headers })
  sweepSeconds = (performance.now() - t0) / 1000
  if (res.status !== 200) throw new Error(`sweep: ${res.status} ${await res.text()}`)
  swept = (await res.json()) as typeof swept
})()
const during = await both(3600, sweep)
await sweep
await waitQuiet()
log(`load alone again (after the sweep), ${DURATION} s ...`)
const afterwards = await both(DURATION)

// The same sweep with no load, on the same number of freshly seeded expired sessions.
log('seeding the expired sessions again, for a sweep without load ...')
await seedMessages('again', EXPIRED, '2 + s % 4', '3 days')
await summarize()
await db.query('ANALYZE messages')
await db.query('ANALYZE sessions')
await waitQuiet()
t0 = performance.now()
const cpuBefore = await cpuSnapshot()
const quiet = JSON.parse(
  await (await fetch(`${url}/api/v1/monitor/retention/sweep`, { method: 'POST', headers })).text(),
) as { deleted_sessions: number; deleted_messages: number }
const quietSeconds = (performance.now() - t0) / 1000
const quietOther = otherCores(cpuBefore, await cpuSnapshot())

const after = await counts()
const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${fmt(os.totalmem() / 2 ** 30)} GiB`
const redis = hasRedis ? `Redis ${await redisVersion(REDIS_URL)}` : 'in-process cache (no Redis)'
const row = (name: string, figures: Figures[] & { other: number }) => {
  const [r, w] = figures
  return `| ${name} | ${fmt(r?.rps ?? 0)} | ${fmt(r?.p50 ?? 0, 1)} | ${fmt(r?.p99 ?? 0, 1)} | ${fmt(w?.rps ?? 0)} | ${fmt(w?.p50 ?? 0, 1)} | ${fmt(w?.p99 ?? 0, 1)} | ${(r?.errors ?? 0) + (w?.errors ?? 0)} | ${fmt(figures.other, 2)} |`
}
log('')
log(`## Retention sweep, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`)
log('')
log(`Machine: ${machine}; Postgres ${version[0]?.v} (schema ${SCHEMA}, pool ${POOL_MAX}), ${redis}.`)
log(
  `Data: ${EXPIRED} sessions idle 3 days (2–5 messages, ${fmt(Number(before.messages) - ACTIVE * 10)} messages) + ${ACTIVE} active (10 messages), ${FLOWS} flows, one tenant, default retention 1 day; batches of ${BATCH} sessions.`,
)
log(
  `Sweep: ${swept?.deleted_sessions} sessions and ${swept?.deleted_messages} messages deleted in ${fmt(sweepSeconds, 1)} s (${fmt((swept?.deleted_sessions ?? 0) / sweepSeconds)} sessions/s) while the load ran; ${after.expired} expired sessions left, ${after.sessions} sessions kept.`,
)
log(
  `Sweep without load: ${quiet.deleted_sessions} sessions and ${quiet.deleted_messages} messages in ${fmt(quietSeconds, 1)} s (${fmt(quiet.deleted_sessions / quietSeconds)} sessions/s; other processes ${fmt(quietOther, 2)} cores).`,
)
log(`Load: ${READERS} connections reading histories (limit 50), ${WRITERS} writing single messages, active sessions.`)
log('')
log(
  '| load | reads/s | read p50 ms | read p99 ms | writes/s | write p50 ms | write p99 ms | errors | other processes (cores) |',
)
log('| --- | --: | --: | --: | --: | --: | --: | --: | --: |')
log(row(`alone, before (${DURATION} s)`, alone))
log(row(`during the sweep (${fmt(sweepSeconds, 1)} s)`, during))
log(row(`alone, after (${DURATION} s)`, afterwards))

child.send({ type: 'stop' } satisfies ServerRequest)
await new Promise((r) => child.once('exit', r))
if (hasRedis) await deleteRedisKeys(REDIS_URL, redisPrefix).catch(() => {})
await db.close()
await dropSchemas(DATABASE_URL, [SCHEMA])
