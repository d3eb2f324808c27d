/**
 * The "gateway runs" scenario of `pnpm bench` (packages/bench/whole-stack/runs.ts; alone:
 * `pnpm --filter @session-runtime/bench bench:runs`): runs through the gateway in issue 13's load shape.
 *
 * Load shape ("20 connections, 200 rotating sessions"): autocannon, BENCH_RUNS_CONNECTIONS (20) connections in a
 * closed loop, each request a new question (`<round>-<n>`) under session `s-<n mod 200>` (a rotating pool of
 * BENCH_RUNS_SESSIONS), `POST /api/v1/run/{flow}` with `x-api-key`. Flows: the echo flow
 * (fixtures/langflow-simple-api-test.json: ChatInput → ChatOutput, no model, 2 messages stored per run) and the
 * built-in Memory Echo (Chat Input → Message History → Prompt → Chat Output: a history read every turn).
 * After every measured round, every acknowledged turn is checked in the store through the monitor API: its
 * question stored once, in its session, followed by the flow's reply (lost, duplicated and wrong turns counted;
 * any is a failure of the bench).
 *
 * The stack as `pnpm start` runs it: the three services each in its own Node process (startStack, each service's
 * default settings: pools, LOG_LEVEL=info), in four set-ups, one after another:
 *   default:  Postgres + Redis (DATABASE_URL / REDIS_URL), logging at the default level (info);
 *   no-rule:  the same with ONE_RUN_PER_SESSION=false: what one run at a time per session (issue 15) costs;
 *   warn:     the same as default with LOG_LEVEL=warn: what logging costs;
 *   embedded: no DATABASE_URL / REDIS_URL: embedded PGlite and the in-process cache (the zero-install default).
 * Each set-up measures a bare-Fastify baseline (whole-stack/baseline.ts: parses the run body, answers the
 * recorded echo response) with the same load in the same sitting, so rows read as ratios on a noisy machine;
 * the default set-up also measures the floor of the stack's shape (whole-stack/floor.ts: three bare Fastify
 * processes chained like the services, the last making one INSERT of the turn's two messages), so the gap
 * between it and the echo run is what the services' own work costs per run; then CPU time per run of each process (from /proc: gateway, run-service, message-store, every Postgres
 * process, redis-server, the load generator), so the next person sees where the time goes.
 *
 * Queueing (issue 15), in each set-up but warn: BENCH_RUNS_QUEUE_ROUNDS (10) times, 10 Memory Echo runs sent at
 * once on one new session, then 10 at once on 10 new sessions; each run's time to its answer. With the rule, the
 * runs on one session execute one after another: the difference of the two means is the queueing delay (the
 * runs of the no-rule set-up overlap instead, and their replies miss each other's questions).
 *
 * Targets (issue 13): echo run at the default configuration ≥ 1,100 runs/s with p99 < 50 ms; Memory Echo
 * ≥ 900 runs/s.
 *
 * Settings (environment): BENCH_RUNS_DURATION (s per round, 15), BENCH_RUNS_WARMUP (s, 5), BENCH_RUNS_ROUNDS (1),
 * BENCH_RUNS_CONNECTIONS (20), BENCH_RUNS_SESSIONS (200), BENCH_RUNS_SETUPS (default,no-rule,warn,embedded),
 * BENCH_RUNS_QUEUE_ROUNDS (10; 0: no queueing measurement),
 * BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_CPU_PROF=1 (profile the services into whole-stack/.profiles-runs/),
 * BENCH_RUNS_FLOOR (1; 0: no floor measurement), BENCH_QUIET_WAIT (s to wait for other processes to go quiet before each set-up, 20),
 * FIXTURES_DIR (default ../shared/fixtures beside the repository).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type ProcessStack, startStack, stopChild } from '@session-runtime/stack'
import autocannon from 'autocannon'
import { cpuDelta, cpuSnapshot, type Snapshot, waitUntilQuiet } from '../src/cpu.js'
import { fetchExpecting, type Measured, measured, positiveInt } from '../src/load.js'
import { profileSummaries } from '../src/profiles.js'
import { fmt, pct } from '../src/report.js'
import { bySession, checkSession, type ListedMessage, type Turn } from '../src/turns.js'
import { findBackends } from './backends.js'
import { type ForkedServer, startForked } from './fork-child.js'

const env = process.env
const DURATION = positiveInt(env.BENCH_RUNS_DURATION, 15)
const WARMUP = positiveInt(env.BENCH_RUNS_WARMUP, 5)
const ROUNDS = positiveInt(env.BENCH_RUNS_ROUNDS, 1)
const CONNECTIONS = positiveInt(env.BENCH_RUNS_CONNECTIONS, 20)
const SESSIONS = positiveInt(env.BENCH_RUNS_SESSIONS, 200)
const SETUPS = (env.BENCH_RUNS_SETUPS ?? 'default,no-rule,warn,embedded').split(',').map((s) => s.trim())
const QUEUE_ROUNDS = Number(env.BENCH_RUNS_QUEUE_ROUNDS ?? 10)
/** Runs sent at once in a queueing round. */
const QUEUE_BURST = 10
const CPU_PROF = env.BENCH_CPU_PROF === '1'
const FLOOR = env.BENCH_RUNS_FLOOR !== '0'
const FLOOR_SCENARIO = 'floor: three bare Fastify hops + one INSERT (floor.ts)'
const QUIET_WAIT_S = Number(env.BENCH_QUIET_WAIT ?? 20)

const TARGET = { echo: { runs: 1100, p99: 50 }, memory: { runs: 900 } }
const TENANT = 'bench-runs'
const API_KEY = `bench-runs-key-${randomBytes(12).toString('hex')}`
const here = fileURLToPath(new URL('.', import.meta.url))
const PROFILE_DIR = join(here, '.profiles-runs')
const FIXTURES = env.FIXTURES_DIR ?? fileURLToPath(new URL('../../../../shared/fixtures', import.meta.url))

const log = (line = '') => console.log(line)

const { databaseUrl, redisUrl, hasPostgres, hasRedis } = await findBackends('BENCH')

interface Setup {
  id: string
  what: string
  postgres: boolean
  logLevel: string
  /** More settings of the run-service. */
  runService?: Record<string, string>
}
const ALL_SETUPS: Setup[] = [
  { id: 'default', what: 'Postgres + Redis, LOG_LEVEL default (info)', postgres: true, logLevel: 'info' },
  {
    id: 'no-rule',
    what: 'Postgres + Redis, LOG_LEVEL default (info), ONE_RUN_PER_SESSION=false (runs of a session may overlap)',
    postgres: true,
    logLevel: 'info',
    runService: { ONE_RUN_PER_SESSION: 'false' },
  },
  { id: 'warn', what: 'Postgres + Redis, LOG_LEVEL=warn', postgres: true, logLevel: 'warn' },
  {
    id: 'embedded',
    what: 'embedded PGlite + in-process cache, LOG_LEVEL default (info)',
    postgres: false,
    logLevel: 'info',
  },
]

/** Processes whose CPU time per run is reported. */
const PROCS = ['gateway', 'run-service', 'message-store', 'postgres', 'redis', 'load'] as const
type Proc = (typeof PROCS)[number]

interface Row extends Measured {
  setup: string
  scenario: string
  /** Acknowledged turns checked in the store, and what was wrong with them. */
  checked: number
  wrong: number
  /** µs of CPU per run (per request for the baseline) of each process. */
  cpu: Partial<Record<Proc, number>>
  vsBaseline?: number
  verdict?: string
}

/** Log lines of the services: counted, not printed (the load generator must not spend its core on them). */
let serviceLines = 0
const onServiceLine = (line: string, stream: 'stdout' | 'stderr') => {
  serviceLines++
  if (stream === 'stderr' || /"level":(50|60)/.test(line)) process.stderr.write(`${line}\n`)
}

/** The load: a new question per request under the next session of the rotating pool; acknowledged turns kept. */
async function load(url: string, path: string, seconds: number, prefix: string): Promise<[autocannon.Result, Turn[]]> {
  let n = 0
  const acknowledged: Turn[] = []
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (req, context) => {
          const i = n++
          const turn: Turn = { question: `${prefix}-${i}`, session: `s-${i % SESSIONS}` }
          ;(context as { turn?: Turn }).turn = turn
          return { ...req, path, body: JSON.stringify({ input_value: turn.question, session_id: turn.session }) }
        },
        onResponse: (status, _body, context) => {
          if (status === 200) acknowledged.push((context as { turn: Turn }).turn)
        },
      },
    ],
  })
  return [result, acknowledged]
}

/** Every message of one session of a flow, oldest first, through the monitor API (keyset pages). */
async function sessionMessages(gateway: string, flowId: string, session: string): Promise<ListedMessage[]> {
  const all: ListedMessage[] = []
  let cursor: string | null = null
  do {
    const q = new URLSearchParams({ flow_id: flowId, session_id: session, limit: '1000', order: 'ASC' })
    if (cursor) q.set('cursor', cursor)
    const res = await fetch(`${gateway}/api/v1/monitor/messages?${q}`, { headers: { 'x-api-key': API_KEY } })
    if (res.status !== 200) throw new Error(`monitor read: ${res.status} ${await res.text()}`)
    all.push(...((await res.json()) as ListedMessage[]))
    cursor = res.headers.get('x-next-cursor')
  } while (cursor)
  return all
}

/** Every acknowledged turn checked in the store (src/turns.ts); how many are wrong (lost, duplicated, unanswered). */
async function checkTurns(gateway: string, flowId: string, prefix: string, turns: Turn[]): Promise<number> {
  let wrong = 0
  for (const [session, questions] of bySession(turns)) {
    const { lost, duplicated, unanswered } = checkSession(
      await sessionMessages(gateway, flowId, session),
      questions,
      `${prefix}-`,
    )
    wrong += lost + duplicated + unanswered
  }
  return wrong
}

function cpuPerRun(a: Snapshot | undefined, b: Snapshot | undefined, pids: Record<string, number>, runs: number) {
  if (!a || !b || runs <= 0) return {}
  const { used } = cpuDelta(a, b)
  // a tick (USER_HZ 100) is 10 ms of CPU time
  const micros = (ticks: number) => (ticks * 10_000) / runs
  return {
    gateway: micros(used((p) => p === pids.gateway)),
    'run-service': micros(used((p) => p === pids['run-service'])),
    'message-store': micros(used((p) => p === pids['message-store'])),
    postgres: micros(used((_, comm) => comm === 'postgres')),
    redis: micros(used((_, comm) => comm.startsWith('redis-server'))),
    load: micros(used((p) => p === process.pid)),
  } satisfies Partial<Record<Proc, number>>
}

async function measureRuns(
  setup: Setup,
  scenario: string,
  gateway: string,
  path: string,
  flowId: string | undefined,
  prefix: string,
  pids: Record<string, number>,
): Promise<Row> {
  const before = await cpuSnapshot()
  const [result, turns] = await load(gateway, path, DURATION, prefix)
  const after = await cpuSnapshot()
  const m = measured(result)
  const runs = result['2xx']
  const wrong = flowId ? await checkTurns(gateway, flowId, prefix, turns) : 0
  const row: Row = {
    setup: setup.id,
    scenario,
    ...m,
    checked: flowId ? turns.length : 0,
    wrong,
    cpu: cpuPerRun(before, after, pids, runs),
  }
  log(
    `  ${setup.id} ${scenario}: ${fmt(m.reqs)} runs/s, p50 ${fmt(m.p50, 1)} ms, p99 ${fmt(m.p99, 1)} ms` +
      (m.errors ? `, ${fmt(m.errors)} errors` : '') +
      (flowId ? `; ${fmt(turns.length)} acknowledged turns checked, ${wrong} wrong` : ''),
  )
  return row
}

interface QueueRow {
  setup: string
  /** Medians over the rounds (ms): the mean and the slowest of a burst's times to answer. */
  oneSession: { mean: number; slowest: number }
  sessions: { mean: number; slowest: number }
}
const queueRows: QueueRow[] = []

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN

/** QUEUE_BURST Memory Echo runs sent at once; each one's time to its answer (ms). */
async function burst(gateway: string, path: string, session: (i: number) => string, prefix: string) {
  const started = performance.now()
  return Promise.all(
    Array.from({ length: QUEUE_BURST }, async (_, i) => {
      await fetchExpecting(
        `${gateway}${path}`,
        {
          method: 'POST',
          headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ input_value: `${prefix}-${i}`, session_id: session(i) }),
        },
        200,
        'queued run',
      )
      return performance.now() - started
    }),
  )
}

/** The queueing delay: bursts on one session against bursts on as many sessions (medians over the rounds). */
async function measureQueueing(setup: Setup, gateway: string, path: string): Promise<QueueRow> {
  const one: { mean: number; slowest: number }[] = []
  const many: { mean: number; slowest: number }[] = []
  const summary = (times: number[]) => ({
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    slowest: Math.max(...times),
  })
  for (let r = 0; r < QUEUE_ROUNDS; r++) {
    one.push(summary(await burst(gateway, path, () => `q-one-${r}`, `q${r}`)))
    many.push(summary(await burst(gateway, path, (i) => `q-many-${r}-${i}`, `q${r}`)))
  }
  const row: QueueRow = {
    setup: setup.id,
    oneSession: { mean: median(one.map((b) => b.mean)), slowest: median(one.map((b) => b.slowest)) },
    sessions: { mean: median(many.map((b) => b.mean)), slowest: median(many.map((b) => b.slowest)) },
  }
  log(
    `  ${setup.id} queueing, ${QUEUE_BURST} Memory Echo runs at once: one session mean ${fmt(row.oneSession.mean, 1)} ms ` +
      `(slowest ${fmt(row.oneSession.slowest, 1)}), ${QUEUE_BURST} sessions mean ${fmt(row.sessions.mean, 1)} ms ` +
      `(slowest ${fmt(row.sessions.slowest, 1)})`,
  )
  return row
}

async function runSetup(setup: Setup, rows: Row[]): Promise<void> {
  const usePostgres = setup.postgres && hasPostgres
  log(`\n${setup.id}: ${setup.what}${setup.postgres && !hasPostgres ? ' (no Postgres reachable: PGlite)' : ''}`)
  const stack: ProcessStack = await startStack({
    name: 'bench_runs',
    postgresUrl: usePostgres ? databaseUrl : undefined,
    redisUrl: setup.postgres && hasRedis ? redisUrl : undefined,
    persistentData: true,
    logLevel: setup.logLevel,
    cpuProfDir: CPU_PROF ? join(PROFILE_DIR, setup.id) : undefined,
    env: {
      all: { NODE_ENV: 'production' },
      gateway: { API_KEYS: `${TENANT}=${API_KEY}`, DATA_DIR: 'memory://' },
      'run-service': setup.runService,
    },
    onLine: (_name, line, stream) => onServiceLine(line, stream),
    readyTimeoutMs: 90_000,
    stopTimeoutMs: 15_000,
  })
  let baseline: ForkedServer | undefined
  let floor: [ForkedServer, ForkedServer, ForkedServer] | undefined
  try {
    const gw = stack.gatewayUrl
    const headers = { 'x-api-key': API_KEY, 'content-type': 'application/json' }
    const echo = JSON.parse(
      await fetchExpecting(
        `${gw}/api/v1/flows/`,
        { method: 'POST', headers, body: await readFile(join(FIXTURES, 'langflow-simple-api-test.json'), 'utf8') },
        201,
        'flow import',
      ),
    ) as { id: string }
    const flows = JSON.parse(
      await fetchExpecting(`${gw}/api/v1/flows/`, { headers: { 'x-api-key': API_KEY } }, 200, 'flow list'),
    ) as { id: string; name: string }[]
    const memory = flows.find((f) => f.name === 'Memory Echo')
    if (!memory) throw new Error('the built-in Memory Echo flow is not in the tenant’s flows')
    const recorded = await fetchExpecting(
      `${gw}/api/v1/run/${echo.id}`,
      { method: 'POST', headers, body: JSON.stringify({ input_value: 'recorded', session_id: 's-0' }) },
      200,
      'echo run',
    )
    baseline = await startForked(
      'baseline',
      'baseline.ts',
      { runBody: recorded, monitorBody: '[]' },
      { onLine: (line, stream) => onServiceLine(line, stream) },
    )
    if (FLOOR && setup.id === 'default' && usePostgres) {
      // the floor of the stack's shape (floor.ts): started back to front, each given the next one's address
      const table = `bench_floor_${process.pid}`
      const forkOpts = { onLine: (line: string, stream: 'stdout' | 'stderr') => onServiceLine(line, stream) }
      const store = await startForked('floor-store', 'floor.ts', { role: 'store', databaseUrl, table }, forkOpts)
      const middle = await startForked(
        'floor-middle',
        'floor.ts',
        {
          role: 'middle',
          upstream: store.url,
          runBody: recorded,
        },
        forkOpts,
      )
      const front = await startForked(
        'floor-front',
        'floor.ts',
        { role: 'front', upstream: middle.url, runBody: '' },
        forkOpts,
      )
      floor = [front, middle, store]
    }
    const pids = {
      gateway: stack.services.gateway.child.pid ?? -1,
      'run-service': stack.services['run-service'].child.pid ?? -1,
      'message-store': stack.services['message-store'].child.pid ?? -1,
    }
    const scenarios = [
      { id: 'echo', scenario: 'echo run', path: `/api/v1/run/${echo.id}`, flowId: echo.id },
      ...(setup.id === 'warn'
        ? []
        : [{ id: 'memory', scenario: 'Memory Echo run', path: `/api/v1/run/${memory.id}`, flowId: memory.id }]),
    ]
    log(`  warm-up (${WARMUP} s each)`)
    await load(baseline.url, `/api/v1/run/${echo.id}`, WARMUP, 'warm')
    if (floor) await load(floor[0].url, `/api/v1/run/${echo.id}`, WARMUP, 'warm-floor')
    for (const s of scenarios) await load(gw, s.path, WARMUP, `warm-${s.id}`)
    await waitUntilQuiet(QUIET_WAIT_S, {
      waiting: (busy) => log(`  waiting up to ${QUIET_WAIT_S} s for quiet (${pct(busy)} of a core in use) ...`),
      stillBusy: (busy, waited) => waited && log(`  still busy (${pct(busy)} of a core); measuring anyway`),
    })
    for (let r = 0; r < ROUNDS; r++) {
      const base = await measureRuns(
        setup,
        'baseline: bare Fastify, recorded echo response',
        baseline.url,
        `/api/v1/run/${echo.id}`,
        undefined,
        `r${r}-base`,
        { ...pids, gateway: baseline.pid },
      )
      rows.push(base)
      if (floor) {
        const [front, middle, store] = floor
        const row = await measureRuns(
          setup,
          FLOOR_SCENARIO,
          front.url,
          `/api/v1/run/${echo.id}`,
          undefined,
          `r${r}-floor`,
          {
            gateway: front.pid,
            'run-service': middle.pid,
            'message-store': store.pid,
          },
        )
        row.vsBaseline = row.reqs / base.reqs
        rows.push(row)
      }
      for (const s of scenarios) {
        const row = await measureRuns(setup, s.scenario, gw, s.path, s.flowId, `r${r}-${s.id}`, pids)
        row.vsBaseline = row.reqs / base.reqs
        if (setup.id !== 'warn') {
          const ok =
            s.id === 'echo' ? row.reqs >= TARGET.echo.runs && row.p99 < TARGET.echo.p99 : row.reqs >= TARGET.memory.runs
          const target =
            s.id === 'echo'
              ? `≥ ${fmt(TARGET.echo.runs)} runs/s, p99 < ${TARGET.echo.p99} ms`
              : `≥ ${fmt(TARGET.memory.runs)} runs/s`
          row.verdict = `${ok ? '✔' : '✘'} ${target}`
        }
        rows.push(row)
      }
    }
    if (setup.id !== 'warn' && QUEUE_ROUNDS > 0) {
      queueRows.push(await measureQueueing(setup, gw, `/api/v1/run/${memory.id}`))
    }
  } finally {
    if (baseline) await stopChild(baseline.child, { timeoutMs: 15_000 })
    for (const server of floor ?? []) await stopChild(server.child, { timeoutMs: 15_000 })
    await stack.stop().catch((err) => log(`could not stop the stack: ${err}`))
  }
}

// ---------------------------------------------------------------- main

const startedAt = new Date()
log(
  `gateway runs: ${CONNECTIONS} connections, ${SESSIONS} rotating sessions, a new question per request, ` +
    `${ROUNDS} round(s) of ${DURATION} s after ${WARMUP} s warm-up; set-ups: ${SETUPS.join(', ')}`,
)
log(
  `postgres: ${hasPostgres ? databaseUrl : 'not reachable (PGlite)'}; redis: ${hasRedis ? redisUrl : 'not reachable'}`,
)
if (CPU_PROF) {
  await rm(PROFILE_DIR, { recursive: true, force: true })
  await mkdir(PROFILE_DIR, { recursive: true })
}
const rows: Row[] = []
for (const setup of ALL_SETUPS.filter((s) => SETUPS.includes(s.id))) await runSetup(setup, rows)

const us = (v: number | undefined) => (v === undefined ? '—' : fmt(v))
const table = [
  `| set-up | scenario | runs/s | p50 ms | p99 ms | vs baseline | target | turns checked (wrong) | CPU µs per run: ${PROCS.map((p) => (p === 'load' ? 'load generator' : p)).join(' / ')} |`,
  '|---|---|--:|--:|--:|--:|---|--:|--:|',
  ...rows.map(
    (r) =>
      `| ${r.setup} | ${r.scenario} | ${fmt(r.reqs)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ` +
      `${r.vsBaseline === undefined ? '—' : pct(r.vsBaseline)} | ${r.verdict ?? '—'} | ` +
      `${r.checked ? `${fmt(r.checked)} (${r.wrong})` : '—'} | ${PROCS.map((p) => us(r.cpu[p])).join(' / ')} |`,
  ),
]
log(`\ngateway runs (${startedAt.toISOString()}, ${os.availableParallelism()} cores, node ${process.version}):\n`)
log(table.join('\n'))
const totals = rows
  .filter((r) => !r.scenario.startsWith('baseline'))
  .map(
    (r) => `${r.setup} ${r.scenario}: ${fmt(PROCS.reduce((s, p) => s + (r.cpu[p] ?? 0), 0))} µs of CPU per run in all`,
  )
log(`\n${totals.join('\n')}`)
if (queueRows.length > 0) {
  log(
    `\nqueueing: ${QUEUE_BURST} Memory Echo runs sent at once, medians over ${QUEUE_ROUNDS} rounds (ms to each answer)\n`,
  )
  log(
    [
      '| set-up | one session: mean | one session: slowest | distinct sessions: mean | distinct sessions: slowest | queueing delay (mean) |',
      '|---|--:|--:|--:|--:|--:|',
      ...queueRows.map(
        (q) =>
          `| ${q.setup} | ${fmt(q.oneSession.mean, 1)} | ${fmt(q.oneSession.slowest, 1)} | ${fmt(q.sessions.mean, 1)} | ` +
          `${fmt(q.sessions.slowest, 1)} | ${fmt(q.oneSession.mean - q.sessions.mean, 1)} |`,
      ),
    ].join('\n'),
  )
}
log(`(${fmt(serviceLines)} log lines written by the services)`)
if (CPU_PROF) {
  for (const setup of SETUPS) {
    const out = await profileSummaries(join(PROFILE_DIR, setup), 25, /^.*\/services\//)
    log(`\nTop frames of each service (${setup}):\n\n${out.join('\n\n')}`)
  }
}
const failed = rows.filter((r) => r.wrong > 0 || r.errors > 0)
if (failed.length > 0) {
  log(`\n${failed.length} scenario(s) with errors or wrong turns: ${failed.map((r) => r.scenario).join(', ')}`)
  process.exitCode = 1
}
