/**
 * `pnpm bench` (or `pnpm --filter @session-runtime/bench bench`): what the
 * gateway costs, measured in one run against the same services called directly.
 *
 * The message-store, the run-service and the gateway run as three child
 * processes started like scripts/start.mjs does (`node --conditions=… --import
 * tsx src/server.ts`, configured by environment: startStack of @session-runtime/stack),
 * the bare-Fastify baseline in a fourth (whole-stack/baseline.ts); autocannon runs here, so the load generator shares
 * no event loop with them. Real Postgres and Redis when reachable (own schemas
 * and key prefix, removed afterwards), else embedded PGlite and the in-process
 * cache (said in the output).
 *
 * Scenarios, in two groups that each compare answers to the same request:
 *   run:     the echo flow (fixtures/langflow-simple-api-test.json: ChatInput → ChatOutput, no model),
 *            `POST /api/v1/run/{id}` over BENCH_SESSIONS sessions at random;
 *   monitor: `GET /api/v1/monitor/messages?flow_id=…&session_id=…` of one session of 50 messages (a hot
 *            read: the same rows every time).
 * Each is sent four ways: to the bare-Fastify baseline (whole-stack/baseline.ts, answering the recorded
 * response: Node's and Fastify's own cost), direct to the service (internal headers), through a bare
 * @fastify/http-proxy (whole-stack/bare-proxy.ts: the cost of any HTTP hop) and through the gateway (x-api-key).
 * gateway cost = 1 − gateway req/s ÷ direct req/s (target ≤ 25%). Each group is warmed up, then measured
 * in BENCH_ROUNDS rounds, the order reversed every round (baseline, direct, bare proxy, gateway, then the
 * reverse), so slow drift (tables growing, another process starting) weighs on both sides of a ratio
 * alike; a row is the mean of its rounds. The CPU each process used per request (from /proc) says where
 * the cost goes.
 *
 * Choices: 50 connections (as the message-store bench: enough to keep every process busy on 2 cores,
 * p99 still meaningful; runs are latency-bound by their two message writes, so fewer connections would
 * leave the CPU idle), 10 s per round after 3 s of warm-up, 2 rounds: about 4 minutes in all.
 *
 * Settings (environment):
 *   BENCH_DURATION (s per round, default 10), BENCH_WARMUP (s, default 3), BENCH_ROUNDS (2),
 *   BENCH_CONNECTIONS (50), BENCH_SESSIONS (1000), BENCH_ONLY (run,monitor),
 *   BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (redis://127.0.0.1:6379),
 *   BENCH_LOG_LEVEL (warn), BENCH_CPU_PROF=1 (profile the services: whole-stack/.profiles/, top frames printed),
 *   BENCH_DOCS=0|1 (write docs/benchmarks.md; default: only for runs of 10 s or more),
 *   BENCH_QUIET_WAIT (s to wait before each round for other processes to go quiet, default 20),
 *   FIXTURES_DIR (where langflow-simple-api-test.json is; default ../shared/fixtures beside the repository).
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import { type ProcessStack, postgresVersion, redisVersion, startStack, stopChild } from '@session-runtime/stack'
import autocannon from 'autocannon'
import { cpuDelta, cpuSnapshot, type Snapshot, waitUntilQuiet } from '../src/cpu.js'
import {
  DOCS_NOT_WRITTEN,
  fetchExpecting,
  loadSettings,
  type Measured,
  measured,
  positiveInt,
  writeDocsWanted,
} from '../src/load.js'
import { profileSummaries } from '../src/profiles.js'
import { fmt, machineLines, pct, resultLines, sectionHeading, sectionText, verdictFindings } from '../src/report.js'
import { findBackends } from './backends.js'
import type { BareProxyStart } from './bare-proxy.js'
import type { BaselineStart } from './baseline.js'
import { startForked } from './fork-child.js'
import {
  combine,
  lossVerdict,
  MAX_LOSS,
  microsPerRequest,
  type Row,
  resultsTable,
  throughputLoss,
  withGatewaySection,
} from './report.js'

const env = process.env

const { duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, sessions: SESSIONS } = loadSettings(env, 1000)
const ROUNDS = positiveInt(env.BENCH_ROUNDS, 2)
const MONITOR_MESSAGES = 50
const LOG_LEVEL = env.BENCH_LOG_LEVEL ?? 'warn'
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined
const CPU_PROF = env.BENCH_CPU_PROF === '1'
const WRITE_DOCS = writeDocsWanted(env.BENCH_DOCS, DURATION)
const QUIET_WAIT_S = Number(env.BENCH_QUIET_WAIT ?? 20)

const TENANT = 'bench-tenant'
const API_KEY = `bench-key-${randomBytes(12).toString('hex')}`

const here = fileURLToPath(new URL('.', import.meta.url))
const PROFILE_DIR = join(here, '.profiles')
const DOCS = fileURLToPath(new URL('../../../docs/benchmarks.md', import.meta.url))
// As the gateway's tests find the fixtures: FIXTURES_DIR, else the shared folder beside the repository.
const FIXTURES = env.FIXTURES_DIR ?? fileURLToPath(new URL('../../../../shared/fixtures', import.meta.url))
const FIXTURE = join(FIXTURES, 'langflow-simple-api-test.json')

const log = (line: string) => console.log(line)

// ---------------------------------------------------------------- backends

const { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, hasPostgres, hasRedis } = await findBackends('BENCH')

async function backendVersions(): Promise<{ postgres: string; redis: string }> {
  let postgres = `embedded PGlite in each service (no Postgres reachable at ${new URL(DATABASE_URL).host})`
  if (hasPostgres) {
    const v = await postgresVersion(DATABASE_URL)
    postgres = `Postgres ${v} at ${new URL(DATABASE_URL).host} (schemas bench_gw_*, dropped afterwards)`
  }
  let redis = `the message-store's in-process cache (no Redis reachable at ${new URL(REDIS_URL).host})`
  if (hasRedis) redis = `Redis ${await redisVersion(REDIS_URL)} at ${new URL(REDIS_URL).host} (message-store cache)`
  return { postgres, redis }
}

// ---------------------------------------------------------------- processes

interface Child {
  name: string
  pid: number
  url: string
}

/** The baseline and the bare proxy (the services are the stack's). */
const children: ChildProcess[] = []

/**
 * The children's output, passed on, but for one kind of line: autocannon ends a run by closing its
 * connections, and a proxied request cut off that way is logged (at warn) as cancelled. Those are
 * counted, not printed.
 */
let abortedLogs = 0
function passOn(line: string, stream: 'stdout' | 'stderr') {
  if (line.includes('"UND_ERR_ABORTED"') || line.includes('the client closed the connection')) abortedLogs++
  else (stream === 'stdout' ? process.stdout : process.stderr).write(`${line}\n`)
}

/** The baseline or the bare proxy: a bench server in its own process, told what to serve over IPC. */
async function startChild(name: string, file: string, start: BaselineStart | BareProxyStart): Promise<Child> {
  const forked = await startForked(name, file, start, {
    cpuProfDir: CPU_PROF ? PROFILE_DIR : undefined,
    onLine: passOn,
  })
  children.push(forked.child)
  return forked
}

// ---------------------------------------------------------------- CPU accounting

/** Columns of the CPU table: who used the two cores during a measured run. */
const CPU_COLUMNS = [
  'load',
  'gateway',
  'bare proxy',
  'run-service',
  'message-store',
  'baseline',
  'postgres',
  'redis',
  'other',
] as const
/** The processes whose share of CPU time spent in the kernel (system time) is reported too. */
const SYS_COLUMNS = ['gateway', 'bare proxy', 'run-service', 'message-store'] as const
type Cpu = Record<(typeof CPU_COLUMNS)[number], number> & {
  /** Of each process's cores, those spent in the kernel (syscalls: socket reads and writes, epoll). */
  sys: Record<(typeof SYS_COLUMNS)[number], number>
}

let pids: Partial<Record<(typeof CPU_COLUMNS)[number], number>> = {}

function cpuBetween(a: Snapshot | undefined, b: Snapshot | undefined): Cpu | undefined {
  if (!a || !b) return undefined
  const { used, toCores } = cpuDelta(a, b)
  const byPid = (pid: number | undefined) => (pid === undefined ? 0 : used((p) => p === pid))
  const cpu = {
    load: used((p) => p === process.pid),
    gateway: byPid(pids.gateway),
    'bare proxy': byPid(pids['bare proxy']),
    'run-service': byPid(pids['run-service']),
    'message-store': byPid(pids['message-store']),
    baseline: byPid(pids.baseline),
    postgres: used((_, comm) => comm === 'postgres'),
    redis: used((_, comm) => comm.startsWith('redis-server')),
    other: 0,
  }
  const known = Object.values(cpu).reduce((s, v) => s + v, 0)
  cpu.other = Math.max(0, b.busy - a.busy - known)
  const sysOf = (pid: number | undefined) => {
    const now = pid === undefined ? undefined : b.procs.get(pid)
    return now ? now[2] - (a.procs.get(pid as number)?.[2] ?? now[2]) : 0
  }
  const sys = Object.fromEntries(SYS_COLUMNS.map((k) => [k, toCores(sysOf(pids[k]))])) as Cpu['sys']
  return { ...(Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, toCores(v)])) as Omit<Cpu, 'sys'>), sys }
}

/** Waits (up to BENCH_QUIET_WAIT s) until other processes use less than a quarter of a core. */
const waitQuiet = () =>
  waitUntilQuiet(QUIET_WAIT_S, {
    waiting: (busy) =>
      log(`  waiting up to ${QUIET_WAIT_S} s for the machine to be quiet (${pct(busy)} of a core in use) ...`),
    stillBusy: (busy, waited) => {
      if (waited) log(`  the machine is still busy (${pct(busy)} of a core in use); measuring anyway`)
    },
  })

// ---------------------------------------------------------------- load

interface Target {
  id: string
  scenario: string
  url: string
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  /** A new body per request (runs: a random session), else none. */
  body?: () => string
}

interface Round extends Measured {
  cpu?: Cpu
}

function load(target: Target, duration: number): Promise<autocannon.Result> {
  const { body } = target
  return autocannon({
    url: target.url,
    connections: CONNECTIONS,
    duration,
    method: target.method,
    headers: target.headers,
    requests: [{ setupRequest: (req) => ({ ...req, path: target.path, ...(body ? { body: body() } : {}) }) }],
  })
}

async function measureRound(target: Target): Promise<Round> {
  const before = await cpuSnapshot()
  const result = await load(target, DURATION)
  const after = await cpuSnapshot()
  return { ...measured(result), cpu: cpuBetween(before, after) }
}

// ---------------------------------------------------------------- profiles

async function printProfiles() {
  const out = await profileSummaries(PROFILE_DIR, 15, /^.*\/services\//)
  log(`\nTop frames of each service:\n\n${out.join('\n\n')}`)
}

// ---------------------------------------------------------------- main

const startedAt = new Date()
log(
  `gateway bench: ${ROUNDS} rounds of ${DURATION} s per scenario after ${WARMUP} s warm-up, ${CONNECTIONS} connections`,
)
log(`postgres: ${hasPostgres ? `${DATABASE_URL} (own schemas)` : 'not reachable, using embedded PGlite'}`)
log(
  `redis:    ${hasRedis ? `${REDIS_URL} (own key prefix)` : "not reachable, using the message-store's in-process cache"}`,
)
if (CPU_PROF) {
  await rm(PROFILE_DIR, { recursive: true, force: true })
  await mkdir(PROFILE_DIR, { recursive: true })
  log(`profiling every service into ${PROFILE_DIR} (numbers are lower while profiling)`)
}

let stack: ProcessStack | undefined
const rows: Row[] = []
const cpuRows: { id: string; cpu: Cpu }[] = []
let backends = { postgres: '', redis: '' }
let monitorBytes = 0
let runBytes = 0

const cleanUp = async () => {
  // The proxies first, then the stack (the gateway first, then what it calls); its schemas and keys go too.
  for (const child of children) await stopChild(child, { timeoutMs: 15_000 })
  await stack?.stop().catch((err) => log(`could not stop the stack or remove its schemas and keys: ${err}`))
}
process.once('SIGINT', () => {
  void cleanUp().finally(() => process.exit(130))
})

try {
  backends = await backendVersions()
  log('\nstarting message-store, run-service and gateway ...')
  stack = await startStack({
    name: 'bench_gw',
    postgresUrl: hasPostgres ? DATABASE_URL : undefined,
    redisUrl: hasRedis ? REDIS_URL : undefined,
    // without Postgres, PGlite on disk as in production, not in memory
    persistentData: true,
    logLevel: LOG_LEVEL,
    cpuProfDir: CPU_PROF ? PROFILE_DIR : undefined,
    env: {
      all: { NODE_ENV: 'production' },
      'message-store': { DATABASE_POOL_MAX: '16' },
      'run-service': { DATABASE_POOL_MAX: undefined },
      gateway: { API_KEYS: `${TENANT}=${API_KEY}`, RATE_LIMIT_MAX: '0', DATA_DIR: 'memory://' },
    },
    onLine: (_name, line, stream) => passOn(line, stream),
    readyTimeoutMs: 90_000,
    stopTimeoutMs: 15_000,
  })
  if (hasPostgres) log(`schemas ${stack.schemas.messageStore}, ${stack.schemas.runService}`)
  if (hasRedis) log(`key prefix ${stack.redisKeyPrefix}`)
  const { gateway, 'run-service': runService, 'message-store': store } = stack.services
  pids = { gateway: gateway.child.pid, 'run-service': runService.child.pid, 'message-store': store.child.pid }
  const INTERNAL_TOKEN = stack.internalToken

  const viaGateway = { 'x-api-key': API_KEY }
  const internal = { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN, [TENANT_HEADER]: TENANT }
  const json = { 'content-type': 'application/json' }

  // The echo flow, imported through the gateway like a client would.
  const flowJson = await readFile(FIXTURE, 'utf8')
  const flow = JSON.parse(
    await fetchExpecting(
      `${gateway.url}/api/v1/flows/`,
      { method: 'POST', headers: { ...viaGateway, ...json }, body: flowJson },
      201,
      'flow import',
    ),
  ) as { id: string }
  const runPath = `/api/v1/run/${flow.id}`
  const runBody = (session: string) => JSON.stringify({ input_value: 'Hello from the bench', session_id: session })
  const bodies = Array.from({ length: SESSIONS }, (_, i) => runBody(`bench-session-${i}`))
  const randomBody = () => bodies[Math.floor(Math.random() * bodies.length)] as string

  // The monitored session: 50 messages (each echo run stores the user's and the flow's message).
  const monitorSession = 'bench-monitored-session'
  let recordedRun = ''
  for (let i = 0; i < MONITOR_MESSAGES / 2; i++) {
    recordedRun = await fetchExpecting(
      runService.url + runPath,
      { method: 'POST', headers: { ...internal, ...json }, body: runBody(monitorSession) },
      200,
      'echo run',
    )
  }
  const echoed = (
    JSON.parse(recordedRun) as { outputs?: { outputs?: { results?: { message?: { text?: string } } }[] }[] }
  ).outputs?.[0]?.outputs?.[0]?.results?.message?.text
  if (echoed !== 'Hello from the bench') log(`  note: the echo run answered ${JSON.stringify(echoed)}`)
  const monitorPath = `/api/v1/monitor/messages?flow_id=${flow.id}&session_id=${monitorSession}`
  const recordedMonitor = await fetchExpecting(store.url + monitorPath, { headers: internal }, 200, 'monitor read')
  const count = (JSON.parse(recordedMonitor) as unknown[]).length
  if (count !== MONITOR_MESSAGES) throw new Error(`monitor read: expected ${MONITOR_MESSAGES} messages, got ${count}`)
  const throughGateway = await fetchExpecting(
    gateway.url + monitorPath,
    { headers: viaGateway },
    200,
    'monitor via gateway',
  )
  if (throughGateway !== recordedMonitor) throw new Error('the gateway answered the monitor read differently')
  runBytes = Buffer.byteLength(recordedRun)
  monitorBytes = Buffer.byteLength(recordedMonitor)
  log(`echo flow ${flow.id}: run response ${fmt(runBytes)} bytes; monitor page ${fmt(monitorBytes)} bytes`)

  const baseline = await startChild('baseline', 'baseline.ts', { runBody: recordedRun, monitorBody: recordedMonitor })
  const bare = await startChild('bare-proxy', 'bare-proxy.ts', {
    runServiceUrl: runService.url,
    messageStoreUrl: store.url,
    internalToken: INTERNAL_TOKEN,
    tenant: TENANT,
  })
  pids.baseline = baseline.pid
  pids['bare proxy'] = bare.pid

  const groups: { id: string; targets: Target[] }[] = [
    {
      id: 'run',
      targets: [
        {
          id: 'baseline-run',
          scenario: 'baseline: bare Fastify, POST run body → recorded echo response',
          url: baseline.url,
          method: 'POST',
          path: runPath,
          headers: { ...internal, ...json },
          body: randomBody,
        },
        {
          id: 'run-direct',
          scenario: `echo run, direct to the run-service, ${fmt(SESSIONS)} sessions`,
          url: runService.url,
          method: 'POST',
          path: runPath,
          headers: { ...internal, ...json },
          body: randomBody,
        },
        {
          id: 'run-bare-proxy',
          scenario: 'echo run, through a bare @fastify/http-proxy (no gateway hooks)',
          url: bare.url,
          method: 'POST',
          path: runPath,
          headers: { ...viaGateway, ...json },
          body: randomBody,
        },
        {
          id: 'run-gateway',
          scenario: `echo run, through the gateway, ${fmt(SESSIONS)} sessions`,
          url: gateway.url,
          method: 'POST',
          path: runPath,
          headers: { ...viaGateway, ...json },
          body: randomBody,
        },
      ],
    },
    {
      id: 'monitor',
      targets: [
        {
          id: 'baseline-monitor',
          scenario: 'baseline: bare Fastify, recorded 50-message monitor page',
          url: baseline.url,
          method: 'GET',
          path: monitorPath,
          headers: internal,
        },
        {
          id: 'monitor-direct',
          scenario: 'hot monitor read, 50 msgs, direct to the message-store',
          url: store.url,
          method: 'GET',
          path: monitorPath,
          headers: internal,
        },
        {
          id: 'monitor-bare-proxy',
          scenario: 'hot monitor read, 50 msgs, through a bare @fastify/http-proxy',
          url: bare.url,
          method: 'GET',
          path: monitorPath,
          headers: viaGateway,
        },
        {
          id: 'monitor-gateway',
          scenario: 'hot monitor read, 50 msgs, through the gateway',
          url: gateway.url,
          method: 'GET',
          path: monitorPath,
          headers: viaGateway,
        },
      ],
    },
  ]

  for (const group of groups) {
    if (ONLY && !ONLY.has(group.id)) continue
    log(`\n${group.id}: warm-up (${WARMUP} s each)`)
    for (const target of group.targets) await load(target, WARMUP)
    const rounds = new Map<string, Round[]>(group.targets.map((t) => [t.id, []]))
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? group.targets : [...group.targets].reverse()
      await waitQuiet()
      for (const target of order) {
        const m = await measureRound(target)
        rounds.get(target.id)?.push(m)
        log(
          `  round ${r + 1} ${target.id}: ${fmt(m.reqs)} req/s, p50 ${fmt(m.p50, 1)} ms, p99 ${fmt(m.p99, 1)} ms` +
            (m.errors ? `, ${fmt(m.errors)} errors` : '') +
            (m.cpu && m.cpu.other > 0.15 ? ` (other processes: ${m.cpu.other.toFixed(2)} cores)` : ''),
        )
      }
    }
    const [base, direct, bareProxy, gw] = group.targets.map((t) => {
      const measured = rounds.get(t.id) ?? []
      const row: Row = { id: t.id, scenario: t.scenario, ...combine(measured) }
      const cpus = measured.map((m) => m.cpu).filter((c): c is Cpu => c !== undefined)
      if (cpus.length > 0) {
        const avg = (f: (c: Cpu) => number) => cpus.reduce((sum, c) => sum + f(c), 0) / cpus.length
        const sys = Object.fromEntries(SYS_COLUMNS.map((k) => [k, avg((c) => c.sys[k])])) as Cpu['sys']
        const mean = { ...Object.fromEntries(CPU_COLUMNS.map((k) => [k, avg((c) => c[k])])), sys } as Cpu
        cpuRows.push({ id: t.id, cpu: mean })
      }
      return row
    }) as [Row, Row, Row, Row]
    direct.vsBaseline = direct.reqs / base.reqs
    for (const proxied of [bareProxy, gw]) {
      proxied.vsBaseline = proxied.reqs / base.reqs
      proxied.loss = throughputLoss(direct.reqs, proxied.reqs)
      proxied.addedP50 = proxied.p50 - direct.p50
      proxied.addedP99 = proxied.p99 - direct.p99
    }
    gw.verdict = lossVerdict(gw.loss ?? Number.NaN)
    rows.push(base, direct, bareProxy, gw)
  }
} finally {
  await cleanUp()
}

// ---------------------------------------------------------------- report

const table = resultsTable(rows)
const cores = (v: number) => v.toFixed(2)
const cpuTable = [
  `| scenario | ${CPU_COLUMNS.map((c) => (c === 'load' ? 'load generator' : c)).join(' | ')} |`,
  `|---|${CPU_COLUMNS.map(() => '--:').join('|')}|`,
  ...cpuRows.map((r) => `| ${r.id} | ${CPU_COLUMNS.map((c) => cores(r.cpu[c])).join(' | ')} |`),
]
log(
  `\n${table.join('\n')}\n\nCPU during the measured runs, in cores (of ${os.availableParallelism()}; mean of the rounds):\n\n${cpuTable.join('\n')}`,
)

const findings = verdictFindings(rows)
const noisy = cpuRows.filter((r) => r.cpu.other > 0.15)
if (noisy.length > 0) {
  findings.push(
    `- Other processes used CPU during ${noisy.map((r) => `${r.id} (${cores(r.cpu.other)} cores)`).join(', ')}: ` +
      'absolute numbers are low; the gateway/direct ratios, measured in alternating rounds, hold better.',
  )
}
// Where the cost goes: CPU time per request of each process that served it, from the CPU table.
const PER_REQUEST: (typeof CPU_COLUMNS)[number][] = [
  'gateway',
  'bare proxy',
  'run-service',
  'message-store',
  'postgres',
]
const perRequest = rows
  .filter((r) => !r.id.startsWith('baseline'))
  .map((r) => {
    const cpu = cpuRows.find((c) => c.id === r.id)?.cpu
    if (!cpu || !(r.reqs > 0)) return undefined
    const kernel = (k: (typeof PER_REQUEST)[number]) =>
      (SYS_COLUMNS as readonly string[]).includes(k)
        ? ` (${pct(cpu.sys[k as (typeof SYS_COLUMNS)[number]] / cpu[k])} kernel)`
        : ''
    const parts = PER_REQUEST.filter((k) => cpu[k] >= 0.02).map(
      (k) => `${k} ${fmt(microsPerRequest(cpu[k], r.reqs))}${kernel(k)}`,
    )
    return `  - ${r.id}: ${parts.join(', ')}`
  })
  .filter((line): line is string => line !== undefined)
if (perRequest.length > 0) {
  findings.push(
    '- CPU per request, in µs (cores ÷ req/s), with the share spent in the kernel (system time: socket ' +
      'reads and writes, epoll); `postgres` counts every Postgres process on the machine:',
    ...perRequest,
  )
}
// The gateway's own work against the cost of any hop: the gateway beside the bare proxy.
for (const group of ['run', 'monitor']) {
  const row = (id: string) => rows.find((r) => r.id === `${group}-${id}`)
  const gwRow = row('gateway')
  const bareRow = row('bare-proxy')
  const gwCpu = cpuRows.find((c) => c.id === `${group}-gateway`)?.cpu.gateway
  const bareCpu = cpuRows.find((c) => c.id === `${group}-bare-proxy`)?.cpu['bare proxy']
  if (!gwRow || !bareRow || gwCpu === undefined || bareCpu === undefined) continue
  const g = microsPerRequest(gwCpu, gwRow.reqs)
  const b = microsPerRequest(bareCpu, bareRow.reqs)
  findings.push(
    `- ${group}: a bare @fastify/http-proxy costs ${pct(bareRow.loss ?? 0)} of the direct req/s and ${fmt(b)} µs of ` +
      `CPU per request, the gateway ${pct(gwRow.loss ?? 0)} and ${fmt(g)} µs: the gateway's own work (API-key ` +
      `check, request ID, metrics, header rewrite) is about ${fmt(g - b)} µs (${pct(Math.max(0, g - b) / g)} of ` +
      "its CPU); the rest is the HTTP hop itself (Node's HTTP server, undici, the socket writes).",
  )
}
log(`\n${findings.join('\n')}`)
if (abortedLogs > 0) log(`(${fmt(abortedLogs)} log lines of requests cut off when autocannon stopped were not shown)`)
if (CPU_PROF) await printProfiles()

if (WRITE_DOCS && rows.length > 0) {
  const section = sectionText([
    sectionHeading(startedAt, 'gateway'),
    '',
    'Results of `pnpm --filter @session-runtime/bench bench` (packages/bench/whole-stack/run.ts); this section is replaced by each run.',
    '',
    ...machineLines(backends),
    `- processes: message-store, run-service and gateway each in its own Node process (\`src/server.ts\`, LOG_LEVEL=${LOG_LEVEL}); the bare-Fastify baseline and a bare @fastify/http-proxy (same undici settings as the gateway, no hooks) in two more; autocannon 9 in the parent`,
    `- load: ${CONNECTIONS} connections; per scenario ${WARMUP} s of warm-up, then ${ROUNDS} rounds of ${DURATION} s in alternating order (baseline, direct, bare proxy, gateway, then the reverse); rows are the means of the rounds; autocannon reports latency in whole milliseconds`,
    `- echo flow: fixtures/langflow-simple-api-test.json (ChatInput → ChatOutput, no model), one tenant, runs over ${fmt(SESSIONS)} sessions at random (each run stores 2 messages); response ${fmt(runBytes)} bytes. Monitor read: one session of ${MONITOR_MESSAGES} messages, ${fmt(monitorBytes)} bytes`,
    `- gateway cost = 1 − gateway req/s ÷ direct req/s, target ≤ ${pct(MAX_LOSS)} (the issue's target is for the echo run; the monitor read is shown against the same line). The bare proxy's cost is that of any HTTP hop; the gap between it and the gateway is the gateway's own per-request work`,
    ...(CPU_PROF ? ['- profiled with --cpu-prof: numbers are lower than without'] : []),
    ...resultLines(
      table,
      `CPU during the measured runs, in cores (of ${os.availableParallelism()}; mean of the rounds):`,
      cpuTable,
      findings,
    ),
  ])
  const intro =
    '# Benchmarks\n\nResults of `pnpm bench`, newest first. ' +
    'Compare ratios within one run, not absolute numbers across runs (see performance-notes).\n'
  let previous = ''
  try {
    previous = await readFile(DOCS, 'utf8')
  } catch {}
  await writeFile(DOCS, withGatewaySection(previous, section, intro))
  log(`\nwrote ${DOCS}`)
} else {
  log(DOCS_NOT_WRITTEN)
}
