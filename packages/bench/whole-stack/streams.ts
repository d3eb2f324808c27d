/**
 * Slow streams at scale (part of `pnpm bench`; alone: `pnpm --filter @session-runtime/bench streams`): how many
 * streamed runs at an LLM's pace the stack carries at once, through the gateway.
 *
 * The message-store, the run-service and the gateway run as three child processes (startStack of
 * @session-runtime/stack, as whole-stack/run.ts and capacity.ts start them). Their Postgres and Redis: as in
 * capacity.ts, a Postgres server and a redis-server of this run's own (from the installed binaries, on free
 * ports, removed afterwards: other people's tests and benches on the shared ones would make the message writes,
 * not the streams, what is measured; its Postgres runs with fsync=off); without the binaries, or with
 * BENCH_STREAMS_OWN_SERVERS=0, the shared ones when reachable (own schemas and key prefix, removed afterwards),
 * else embedded PGlite and the in-process cache.
 * Their model is the fake OpenAI-compatible one of @session-runtime/stack in a fourth process
 * (whole-stack/paced-model.ts): each reply BENCH_STREAMS_TOKENS word chunks, BENCH_STREAMS_TOKEN_MS apart.
 * The flow is fixtures/langflow-basic-prompting.json (ChatInput → Language Model ← Prompt, → ChatOutput),
 * imported through the gateway; each run stores the user's message and the model's reply.
 *
 * Load, per level N of BENCH_STREAMS_LEVELS: N streamed runs in flight at all times (`POST
 * /api/v1/run/{flow}?stream=true` with `x-api-key`, node:http, one keep-alive connection per stream, each run its
 * own new session; closed loop: a run that ends is followed at once by the next), started evenly over
 * BENCH_STREAMS_RAMP s; after a settling second, BENCH_STREAMS_PLATEAU s are measured; then no more runs start
 * and those in flight finish. Measured:
 *   - every run: did it end with `end` (nothing after it), its BENCH_STREAMS_TOKENS token events, the reply's full
 *     text in the `end` event; then in the store (Postgres, else the monitor API): exactly one reply of that id
 *     and text in its session, and the user's message;
 *   - during the plateau: the gaps between two token events of a run as the client sees them, minus the
 *     model's interval (what the stack adds), p50 and p99; the time to the first token;
 *   - event-loop delay of every service, the model and the load generator over the plateau, and the heap after a
 *     forced GC when idle and at the plateau's end (N streams in flight): (plateau − idle) ÷ N is the memory of
 *     one stream in flight. Both come from a bench-only preload (whole-stack/probe.ts: `--expose-gc --import`,
 *     answering SIGWINCH), so the services have no debug endpoint;
 *   - CPU of every process during the plateau (from /proc).
 * Targets (the issue's): every run ends with `end` and is stored once; added gap p99 < 20 ms; event-loop delay
 * p99 < 50 ms in every service; heap per stream in flight < 50 KB. The levels go up until one misses a target
 * (BENCH_STREAMS_ALL=1: every level); the largest N that meets all is the result.
 *
 * Open files: each stream holds a socket in the load generator, two in the gateway and the run-service, one in
 * the model. Node raises its soft limit (ulimit -n) to the hard one as it starts, in every process here; levels
 * that need more than that are left out (said in the output).
 *
 * Settings (environment):
 *   BENCH_STREAMS_LEVELS (comma-separated, default 25,50,100,250,500,1000,2000), BENCH_STREAMS_PLATEAU (s, 10),
 *   BENCH_STREAMS_RAMP (s, default a stream's length: tokens × interval), BENCH_STREAMS_WARMUP (s at 100 streams
 *   before the first level, 5), BENCH_STREAMS_TOKENS (40), BENCH_STREAMS_TOKEN_MS (50), BENCH_STREAMS_ALL=1,
 *   BENCH_STREAMS_LOG_LEVEL (the services' LOG_LEVEL; default: not set, their own default, info),
 *   BENCH_STREAMS_HEAP_SNAPSHOT=1 (each probed process writes a heap snapshot at the end of every plateau, into
 *   whole-stack/.profiles/heap; slow), BENCH_CPU_PROF=1 (profile the services: whole-stack/.profiles/, top frames
 *   printed), BENCH_QUIET_WAIT (s to wait before each level for other processes to go quiet, default 20),
 *   BENCH_STREAMS_SERVICE_LOG (a file every line of the services goes to, besides the warnings shown),
 *   BENCH_DOCS=0|1 (write docs/benchmarks.md; default: for plateaus of 10 s or more), BENCH_STREAMS_OWN_SERVERS
 *   (1), BENCH_DATABASE_URL, BENCH_REDIS_URL (the shared ones), FIXTURES_DIR (as run.ts). About 2–3 minutes with the defaults.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  childExecArgv,
  hasRedisServer,
  type ProcessStack,
  postgresBin,
  postgresVersion,
  redisVersion,
  type ServiceName,
  sleep,
  startPostgresServer,
  startRedisServer,
  startStack,
  stopChild,
  type Teardown,
  withPg,
} from '@session-runtime/stack'
import { cpuDelta, cpuSnapshot, parentOf, type Snapshot, waitUntilQuiet } from '../src/cpu.js'
import { DOCS_NOT_WRITTEN, fetchExpecting, positiveInt, writeDocsWanted } from '../src/load.js'
import { profileSummaries } from '../src/profiles.js'
import { fmt, machineLines, pct, sectionHeading, sectionText } from '../src/report.js'
import { findBackends } from './backends.js'
import type { PacedModelRequest, PacedModelStart, PacedModelTimes } from './paced-model.js'
import { type ProbeReport, probeReport } from './probe-report.js'
import { withOwnSection } from './report.js'
import { pacedReply, Samples, type StreamRun, streamRun, tokenTimings } from './stream-client.js'

const env = process.env
const LEVELS = (env.BENCH_STREAMS_LEVELS ?? '25,50,100,250,500,1000,2000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0)
const PLATEAU_S = positiveInt(env.BENCH_STREAMS_PLATEAU, 10)
const TOKENS = positiveInt(env.BENCH_STREAMS_TOKENS, 40)
const TOKEN_MS = positiveInt(env.BENCH_STREAMS_TOKEN_MS, 50)
const STREAM_MS = TOKENS * TOKEN_MS
const RAMP_S = positiveInt(env.BENCH_STREAMS_RAMP, STREAM_MS / 1000)
const WARMUP_S = positiveInt(env.BENCH_STREAMS_WARMUP, 5)
const WARMUP_STREAMS = 100
const ALL_LEVELS = env.BENCH_STREAMS_ALL === '1'
const OWN_SERVERS = env.BENCH_STREAMS_OWN_SERVERS !== '0'
const SERVICE_LOG = env.BENCH_STREAMS_SERVICE_LOG
const LOG_LEVEL = env.BENCH_STREAMS_LOG_LEVEL
const HEAP_SNAPSHOT = env.BENCH_STREAMS_HEAP_SNAPSHOT === '1'
const CPU_PROF = env.BENCH_CPU_PROF === '1'
const QUIET_WAIT_S = Number(env.BENCH_QUIET_WAIT ?? 20)
const WRITE_DOCS = writeDocsWanted(env.BENCH_DOCS, PLATEAU_S)
/** Bound of one run: its stream and a generous margin for a stack under too much load. */
const RUN_TIMEOUT_MS = STREAM_MS + 60_000
const SETTLE_MS = 1000

/** The issue's targets. */
const TARGET = { addedGapP99Ms: 20, eldP99Ms: 50, heapPerStreamBytes: 50 * 1024 }

const TENANT = 'bench-streams'
const API_KEY = `bench-streams-key-${randomBytes(12).toString('hex')}`

const here = fileURLToPath(new URL('.', import.meta.url))
const PROFILE_DIR = join(here, '.profiles')
const PROBE = join(here, 'probe.ts')
const DOCS = fileURLToPath(new URL('../../../docs/benchmarks.md', import.meta.url))
const FIXTURES = env.FIXTURES_DIR ?? fileURLToPath(new URL('../../../../shared/fixtures', import.meta.url))
const FIXTURE = join(FIXTURES, 'langflow-basic-prompting.json')
const HEADING = /^## .* — slow streams \(/
/** With BENCH_STREAMS_HEAP_SNAPSHOT=1: Node's --heapsnapshot-signal, sent at each plateau's end. */
const SNAPSHOT_SIGNAL = 'SIGTTIN'

const log = (line = '') => console.log(line)

// ---------------------------------------------------------------- open files

/** Sockets (and a margin) the busiest process (the gateway: a client's and an upstream socket per stream) needs. */
const filesFor = (streams: number) => 2 * streams + 1024

/**
 * This process's open-files limit: Node raises its soft limit to the hard one as it starts (so does every
 * service), so this is the hard limit unless that is unlimited.
 */
async function openFilesLimit(): Promise<number> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '')
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1]
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft)
}

const openFiles = await openFilesLimit()
const levels = LEVELS.filter((n) => filesFor(n) <= openFiles)
if (levels.length < LEVELS.length) {
  log(
    `open files: the limit (${openFiles}, ulimit -n; Node raises the soft limit to the hard one) is too low for ${LEVELS.filter((n) => !levels.includes(n)).join(', ')} streams: left out`,
  )
}

// ---------------------------------------------------------------- processes and probes

const PROBED = ['gateway', 'run-service', 'message-store', 'model'] as const
type Probed = (typeof PROBED)[number]
const SERVICES: readonly ServiceName[] = ['gateway', 'run-service', 'message-store']

const pids = {} as Record<Probed, number>
const waiting = new Map<number, (report: ProbeReport) => void>()
let warnLines = 0
let infoLines = 0
const shownWarnings: string[] = []

const serviceLog = SERVICE_LOG ? createWriteStream(SERVICE_LOG) : undefined

/** A line of a probed process: a probe's report, else a log line (warnings and errors shown, 20 at most). */
function onLine(name: string, line: string, stream: 'stdout' | 'stderr') {
  serviceLog?.write(`${name} ${line}\n`)
  const report = probeReport(line)
  if (report) {
    waiting.get(report.pid)?.(report)
    waiting.delete(report.pid)
    return
  }
  const level = /"level":(\d+)/.exec(line)?.[1]
  if (level === undefined || Number(level) >= 40 || stream === 'stderr') {
    warnLines++
    if (shownWarnings.length < 20) {
      shownWarnings.push(`${name}: ${line.slice(0, 400)}`)
      log(`  [${name}] ${line.slice(0, 400)}`)
    }
  } else infoLines++
}

/** Asks every probed process for its report (event-loop delay since the last one, heap after a GC). */
async function probeAll(): Promise<Record<Probed, ProbeReport>> {
  const reports = await Promise.all(
    PROBED.map(
      (name) =>
        new Promise<ProbeReport>((resolve, reject) => {
          const pid = pids[name]
          const timer = setTimeout(() => reject(new Error(`${name} (pid ${pid}) gave no probe report`)), 30_000)
          waiting.set(pid, (report) => {
            clearTimeout(timer)
            resolve(report)
          })
          try {
            process.kill(pid, 'SIGWINCH')
          } catch (error) {
            clearTimeout(timer)
            reject(new Error(`${name} (pid ${pid}) cannot be probed: ${(error as Error).message}`))
          }
        }),
    ),
  )
  return Object.fromEntries(PROBED.map((name, i) => [name, reports[i]])) as Record<Probed, ProbeReport>
}

/** The load generator's own event-loop delay (its lateness is in every gap it measures). */
const ownDelay = monitorEventLoopDelay({ resolution: 10 })
ownDelay.enable()

// ---------------------------------------------------------------- CPU

const CPU_COLUMNS = [
  'gateway',
  'run-service',
  'message-store',
  'postgres',
  'redis',
  'model',
  'load generator',
  'other',
] as const
type Cpu = Record<(typeof CPU_COLUMNS)[number], number>

/** With servers of this run's own: their processes (the postmaster, its children; redis-server). */
let ownServerPids: { postmaster: number; redis?: number } | undefined

async function cpuBetween(a: Snapshot | undefined, b: Snapshot | undefined): Promise<Cpu | undefined> {
  if (!a || !b) return undefined
  const { used, toCores } = cpuDelta(a, b)
  const byPid = (pid: number) => used((p) => p === pid)
  type Match = (pid: number, comm: string) => boolean
  let isPostgres: Match = (_pid, comm) => comm === 'postgres'
  let isRedis: Match = (_pid, comm) => comm.startsWith('redis-server')
  if (ownServerPids) {
    const { postmaster, redis } = ownServerPids
    const pg = new Set([postmaster])
    for (const pid of b.procs.keys()) if ((await parentOf(pid)) === postmaster) pg.add(pid)
    isPostgres = (pid) => pg.has(pid)
    isRedis = (pid) => pid === redis
  }
  const ticks = {
    gateway: byPid(pids.gateway),
    'run-service': byPid(pids['run-service']),
    'message-store': byPid(pids['message-store']),
    postgres: used(isPostgres),
    redis: used(isRedis),
    model: byPid(pids.model),
    'load generator': byPid(process.pid),
    other: 0,
  }
  const known = Object.values(ticks).reduce((s, v) => s + v, 0)
  ticks.other = Math.max(0, b.busy - a.busy - known)
  return Object.fromEntries(Object.entries(ticks).map(([k, v]) => [k, toCores(v)])) as Cpu
}

const waitQuiet = () =>
  waitUntilQuiet(QUIET_WAIT_S, {
    waiting: (busy) =>
      log(`  waiting up to ${QUIET_WAIT_S} s for the machine to be quiet (${pct(busy)} of a core in use)`),
    stillBusy: (busy, waited) => {
      if (waited) log(`  the machine is still busy (${pct(busy)} of a core in use); measuring anyway`)
    },
  })

// ---------------------------------------------------------------- one level

interface LevelResult {
  streams: number
  started: number
  /** Runs that ended with `end`, all their tokens and the right reply. */
  completed: number
  /** Of those, stored exactly once with the full text (and the user's message). */
  stored: number
  failures: Map<string, number>
  runsPerSecond: number
  /** Client gap between two tokens of a run minus the model's interval. */
  addedGap: { p50: number; p99: number; max: number; count: number }
  /** Client gap minus the model's own gap between writing the two words: what the stack added (the target). */
  stackGap: { p50: number; p99: number; max: number; count: number }
  /** Token latency, model's write → client. */
  latency: { p50: number; p99: number }
  firstToken: { p50: number; p99: number }
  /** Of the first token's wait: until the response's headers, until the user's message is stored (p50s). */
  firstTokenParts: { headers: number; stored: number }
  /** Wall time of the runs that ended in the plateau, milliseconds. */
  duration: { p50: number; p99: number }
  /** Token events the clients got per second during the plateau. */
  tokensPerSecond: number
  inFlightAtEnd: number
  eld: Record<Probed, number>
  loadEld: number
  /** Heap after GC per stream in flight, bytes: (plateau end − idle) ÷ N. */
  heapPerStream: Record<Probed, number>
  idleHeap: Record<Probed, number>
  cpu?: Cpu
  pass: boolean
  missed: string[]
}

interface Target {
  host: string
  port: number
  path: string
  headers: Record<string, string>
}

const TAG = randomBytes(3).toString('hex')

/** N workers, each running streamed runs one after another until told to stop. */
function closedLoop(streams: number, target: Target, agent: http.Agent, label: string) {
  const runs: StreamRun[] = []
  let stopping = false
  let inFlight = 0
  const worker = async (i: number) => {
    await sleep((i * RAMP_S * 1000) / streams)
    for (let k = 0; !stopping; k++) {
      const input = `${label}-${i}-${k}-${TAG}`
      inFlight++
      const run = await streamRun({ agent, ...target, session: input, input, timeoutMs: RUN_TIMEOUT_MS })
      inFlight--
      runs.push(run)
    }
  }
  const done = Promise.all(Array.from({ length: streams }, (_, i) => worker(i)))
  return {
    runs,
    inFlight: () => inFlight,
    stop: () => {
      stopping = true
      return done
    },
  }
}

/** Per session of `runs`: its stored replies (sender Machine) and how many messages it has. */
type Stored = Map<string, { replies: { id: string; text: string }[]; messages: number }>

let storedOf: (flowId: string, sessions: string[]) => Promise<Stored>

/** When the model wrote each word of the replies to `inputs` (then forgotten by the model), by input. */
async function modelTimes(inputs: string[]): Promise<Map<string, number[]>> {
  const all = new Map<string, number[]>()
  for (let at = 0; at < inputs.length; at += 1000) {
    const answer = new Promise<PacedModelTimes>((resolve) =>
      model?.once('message', (m) => resolve(m as PacedModelTimes)),
    )
    model?.send({ times: inputs.slice(at, at + 1000) } satisfies PacedModelRequest)
    for (const [input, times] of Object.entries((await answer).times)) all.set(input, times)
  }
  return all
}

function verdictOf(r: Omit<LevelResult, 'pass' | 'missed'>): string[] {
  const missed: string[] = []
  if (r.stored < r.started)
    missed.push(`${fmt(r.started - r.stored)} of ${fmt(r.started)} runs not complete and stored once`)
  if (!(r.stackGap.p99 < TARGET.addedGapP99Ms)) missed.push(`gap added by the stack p99 ${fmt(r.stackGap.p99, 1)} ms`)
  for (const name of SERVICES) {
    if (!(r.eld[name] < TARGET.eldP99Ms)) missed.push(`${name} event-loop delay p99 ${fmt(r.eld[name], 1)} ms`)
    if (!(r.heapPerStream[name] < TARGET.heapPerStreamBytes)) {
      missed.push(`${name} heap ${fmt(r.heapPerStream[name] / 1024, 1)} KB per stream`)
    }
  }
  return missed
}

async function runLevel(streams: number, target: Target, flowId: string): Promise<LevelResult> {
  await waitQuiet()
  const idle = await probeAll()
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
  const loop = closedLoop(streams, target, agent, `L${streams}`)
  await sleep(RAMP_S * 1000 + SETTLE_MS)
  await probeAll() // GC and a fresh event-loop delay window at the plateau's start
  await sleep(300) // tokens held back by those GCs are not counted
  const from = performance.now()
  const fromClock = process.hrtime.bigint() / 1000n
  ownDelay.reset()
  const cpuBefore = await cpuSnapshot()
  await sleep(PLATEAU_S * 1000)
  const to = performance.now()
  // the profiles' clock (CLOCK_MONOTONIC, µs): their samples of the plateau alone can be picked out
  if (CPU_PROF) log(`  plateau: ${fromClock}..${process.hrtime.bigint() / 1000n} µs (monotonic clock of the profiles)`)
  const cpuAfter = await cpuSnapshot()
  const loadEld = Math.max(0, ownDelay.percentile(99) / 1e6 - 10)
  const inFlightAtEnd = loop.inFlight()
  const plateau = await probeAll()
  if (HEAP_SNAPSHOT) for (const name of PROBED) process.kill(pids[name], SNAPSHOT_SIGNAL)
  await loop.stop()
  agent.destroy()

  const runs = loop.runs
  const failures = new Map<string, number>()
  const fail = (why: string) => failures.set(why, (failures.get(why) ?? 0) + 1)
  const good = runs.filter((run) => {
    const expected = pacedReply(run.input, TOKENS)
    if (!run.ended) fail((run.failure ?? 'not ended').replace(/\d+/g, '#').slice(0, 120))
    else if (run.tokens !== TOKENS) fail(`${run.tokens < TOKENS ? 'fewer' : 'more'} token events than ${TOKENS}`)
    else if (run.reply?.text !== expected) fail('end event without the full reply')
    else return true
    return false
  })
  const stored = await storedOf(
    flowId,
    good.map((run) => run.session),
  )
  let storedOnce = 0
  for (const run of good) {
    const s = stored.get(run.session)
    const ok =
      s?.replies.length === 1 &&
      s.replies[0]?.id === run.reply?.id &&
      s.replies[0]?.text === run.reply?.text &&
      s.messages === 2
    if (ok) storedOnce++
    else fail(s ? `stored ${s.replies.length} replies, ${s.messages} messages (not 1 and 2)` : 'nothing stored')
  }
  const inWindow = runs.filter((run) => run.startedAt >= from && run.startedAt <= to)
  const firstTokens = new Samples()
  const headersAt = new Samples()
  const storedAt = new Samples()
  for (const run of inWindow) {
    if (run.firstTokenMs !== undefined) firstTokens.add(run.firstTokenMs)
    if (run.headersMs !== undefined) headersAt.add(run.headersMs)
    if (run.firstMessageMs !== undefined) storedAt.add(run.firstMessageMs)
  }
  const timings = tokenTimings(
    runs,
    await modelTimes(runs.map((run) => run.input)),
    { from: performance.timeOrigin + from, to: performance.timeOrigin + to },
    TOKEN_MS,
  )
  const [g50, g99, gMax] = timings.addedGap.percentiles(50, 99, 100) as [number, number, number]
  const [s50, s99, sMax] = timings.stackGap.percentiles(50, 99, 100) as [number, number, number]
  const [l50, l99] = timings.latency.percentiles(50, 99) as [number, number]
  const [f50, f99] = firstTokens.percentiles(50, 99) as [number, number]
  const endedInWindow = runs.filter((run) => run.endedAt >= from && run.endedAt <= to)
  const durations = new Samples()
  for (const run of endedInWindow) durations.add(run.endedAt - run.startedAt)
  const [d50, d99] = durations.percentiles(50, 99) as [number, number]
  const heap = (name: Probed) => (plateau[name].memory.heapUsed - idle[name].memory.heapUsed) / streams
  const result: Omit<LevelResult, 'pass' | 'missed'> = {
    streams,
    started: runs.length,
    completed: good.length,
    stored: storedOnce,
    failures,
    runsPerSecond: endedInWindow.length / ((to - from) / 1000),
    duration: { p50: d50, p99: d99 },
    tokensPerSecond: timings.tokens / ((to - from) / 1000),
    addedGap: { p50: g50, p99: g99, max: gMax, count: timings.addedGap.length },
    stackGap: { p50: s50, p99: s99, max: sMax, count: timings.stackGap.length },
    latency: { p50: l50, p99: l99 },
    firstToken: { p50: f50, p99: f99 },
    firstTokenParts: { headers: headersAt.percentiles(50)[0] as number, stored: storedAt.percentiles(50)[0] as number },
    inFlightAtEnd,
    eld: Object.fromEntries(PROBED.map((name) => [name, plateau[name].eld.p99])) as Record<Probed, number>,
    loadEld,
    heapPerStream: Object.fromEntries(PROBED.map((name) => [name, heap(name)])) as Record<Probed, number>,
    idleHeap: Object.fromEntries(PROBED.map((name) => [name, idle[name].memory.heapUsed])) as Record<Probed, number>,
    cpu: await cpuBetween(cpuBefore, cpuAfter),
  }
  const missed = verdictOf(result)
  return { ...result, pass: missed.length === 0, missed }
}

// ---------------------------------------------------------------- report

const ms1 = (n: number) => (Number.isNaN(n) ? '—' : fmt(n, 1))
const kb = (bytes: number) => fmt(bytes / 1024, 1)
const cores = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(2))

function table(results: LevelResult[]): string[] {
  return [
    '| streams (N) | runs ended with `end`, stored once / started | runs/s, tokens/s | gap added by the stack p50 / p99 ms | client gap − model interval p50 / p99 ms | token latency p50 / p99 ms | first token p50 / p99 ms | event-loop delay p99 ms: gateway / run-service / message-store (model, load generator) | heap per stream KB: gateway / run-service / message-store | targets |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|',
    ...results.map(
      (r) =>
        `| ${fmt(r.streams)} | ${fmt(r.stored)} / ${fmt(r.started)} | ${fmt(r.runsPerSecond)}, ${fmt(r.tokensPerSecond)} | ${ms1(r.stackGap.p50)} / ${ms1(r.stackGap.p99)} | ${ms1(r.addedGap.p50)} / ${ms1(r.addedGap.p99)} | ${ms1(r.latency.p50)} / ${ms1(r.latency.p99)} | ${fmt(r.firstToken.p50)} / ${fmt(r.firstToken.p99)} | ${ms1(r.eld.gateway)} / ${ms1(r.eld['run-service'])} / ${ms1(r.eld['message-store'])} (${ms1(r.eld.model)}, ${ms1(r.loadEld)}) | ${kb(r.heapPerStream.gateway)} / ${kb(r.heapPerStream['run-service'])} / ${kb(r.heapPerStream['message-store'])} | ${r.pass ? '✔' : '✘'} |`,
    ),
  ]
}

function cpuTable(results: LevelResult[]): string[] {
  return [
    `| streams (N) | ${CPU_COLUMNS.join(' | ')} |`,
    `|--:|${CPU_COLUMNS.map(() => '--:').join('|')}|`,
    ...results.map((r) => `| ${fmt(r.streams)} | ${CPU_COLUMNS.map((c) => cores(r.cpu?.[c])).join(' | ')} |`),
  ]
}

function findings(results: LevelResult[]): string[] {
  const lines: string[] = []
  const best = results.filter((r) => r.pass).at(-1)
  lines.push(
    best
      ? `- Largest N that meets every target: **${fmt(best.streams)}** concurrent streams.`
      : '- **No level met every target.**',
  )
  for (const r of results.filter((x) => !x.pass)) lines.push(`- N = ${fmt(r.streams)} missed: ${r.missed.join('; ')}.`)
  const runs = results.reduce((sum, r) => sum + r.started, 0)
  if (results.every((r) => r.stored === r.started)) {
    lines.push(
      `- Every run of every level (${fmt(runs)}) ended with \`end\`, its ${TOKENS} tokens and its reply stored once.`,
    )
  }
  for (const r of results) {
    if (r.failures.size === 0) continue
    const kinds = [...r.failures.entries()].map(([why, n]) => `${fmt(n)} × ${why}`).join('; ')
    lines.push(`- N = ${fmt(r.streams)}, runs that failed: ${kinds}.`)
  }
  const noisy = results.filter((r) => (r.cpu?.other ?? 0) > 0.15)
  if (noisy.length > 0) {
    lines.push(
      `- Other processes used CPU during ${noisy.map((r) => `N = ${fmt(r.streams)} (${cores(r.cpu?.other)} cores)`).join(', ')}: ` +
        'delays (gaps, event-loop delay, first token) there are longer than the stack alone would make them.',
    )
  }
  const peak = results.reduce((a, r) => (r.tokensPerSecond > a.tokensPerSecond ? r : a), results[0] as LevelResult)
  lines.push(
    `- Most tokens through the stack: ${fmt(peak.tokensPerSecond)}/s (${fmt(peak.runsPerSecond)} runs/s) at N = ${fmt(peak.streams)}; ` +
      `N streams at full pace need N × ${fmt(1000 / TOKEN_MS)} tokens/s.`,
  )
  for (const r of results) {
    if (!r.cpu || !(r.runsPerSecond > 0) || !(r.tokensPerSecond > 0)) continue
    const all = CPU_COLUMNS.filter((c) => c !== 'other').reduce((sum, c) => sum + (r.cpu?.[c] ?? 0), 0)
    const per = SERVICES.map((name) => `${name} ${fmt(((r.cpu?.[name] ?? 0) / r.tokensPerSecond) * 1e6)}`).join(', ')
    lines.push(
      `- N = ${fmt(r.streams)}: CPU per token (its share of a run's cost included), µs: ${per}; all processes of the ` +
        `bench ${fmt((all / r.tokensPerSecond) * 1e6)}; ${fmt(r.inFlightAtEnd)} streams in flight at the plateau's end.`,
    )
  }
  const idle = results[0]?.idleHeap
  if (idle) {
    lines.push(
      `- Idle heap after GC before the first level: ${SERVICES.map((n) => `${n} ${fmt(idle[n] / 2 ** 20, 1)} MB`).join(', ')}; before the last: ${SERVICES.map((n) => `${n} ${fmt((results.at(-1)?.idleHeap[n] ?? 0) / 2 ** 20, 1)} MB`).join(', ')}.`,
    )
  }
  return lines
}

// ---------------------------------------------------------------- main

const teardowns: (() => unknown)[] = []
const own: Teardown = { teardown: (fn) => teardowns.push(fn) }
const shared = await findBackends('BENCH')
const bin = OWN_SERVERS ? await postgresBin() : undefined
const ownPostgres = bin ? await startPostgresServer(own, bin) : undefined
const ownRedis = OWN_SERVERS && hasRedisServer() ? await startRedisServer(own) : undefined
const DATABASE_URL = ownPostgres?.url ?? shared.databaseUrl
const REDIS_URL = ownRedis?.url ?? shared.redisUrl
const hasPostgres = ownPostgres !== undefined || shared.hasPostgres
const hasRedis = ownRedis !== undefined || shared.hasRedis
if (ownPostgres?.proc?.pid) ownServerPids = { postmaster: ownPostgres.proc.pid, redis: ownRedis?.proc?.pid }
const startedAt = new Date()
log(
  `slow streams: levels ${levels.join(', ')} streams; ${TOKENS} tokens ${TOKEN_MS} ms apart; ramp ${RAMP_S} s, plateau ${PLATEAU_S} s`,
)
log(`open files: ${openFiles} per process (Node raises the soft limit to the hard one)`)
const sharedAt = (what: string) => `${what} (own schemas and key prefix)`
log(
  `postgres: ${ownPostgres ? `${ownPostgres.describe()}, fsync=off` : hasPostgres ? sharedAt(DATABASE_URL) : 'not reachable, using embedded PGlite'}`,
)
log(
  `redis:    ${ownRedis ? `own redis-server on port ${ownRedis.port}` : hasRedis ? sharedAt(REDIS_URL) : "not reachable, using the message-store's in-process cache"}`,
)
if (CPU_PROF || HEAP_SNAPSHOT) {
  await rm(PROFILE_DIR, { recursive: true, force: true })
  await mkdir(join(PROFILE_DIR, 'heap'), { recursive: true })
  if (CPU_PROF) log(`profiling every service into ${PROFILE_DIR} (numbers are lower while profiling)`)
}

const probeArgs = [
  '--expose-gc',
  '--import',
  PROBE,
  ...(HEAP_SNAPSHOT
    ? [`--heapsnapshot-signal=${SNAPSHOT_SIGNAL}`, `--diagnostic-dir=${join(PROFILE_DIR, 'heap')}`]
    : []),
]
let model: ChildProcess | undefined
let stack: ProcessStack | undefined
const results: LevelResult[] = []
const backends = { postgres: '', redis: '' }

const cleanUp = async () => {
  await stack?.stop().catch((err) => log(`could not stop the stack or remove its schemas and keys: ${err}`))
  if (model) await stopChild(model, { timeoutMs: 5_000 })
  for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch((err) => log(`clean-up: ${err}`))
}
process.once('SIGINT', () => {
  void cleanUp().finally(() => process.exit(130))
})

try {
  const where = ownPostgres ? "this run's own server (fsync=off)" : `${new URL(DATABASE_URL).host}, own schemas`
  backends.postgres = hasPostgres
    ? `Postgres ${await postgresVersion(DATABASE_URL)} (${where}, removed afterwards)`
    : 'embedded PGlite in each service'
  const redisWhere = ownRedis ? "this run's own redis-server" : `${new URL(REDIS_URL).host}, own key prefix`
  backends.redis = hasRedis
    ? `Redis ${await redisVersion(REDIS_URL)} (${redisWhere}; message-store cache)`
    : "the message-store's in-process cache"

  model = fork(join(here, 'paced-model.ts'), [], {
    execArgv: [...childExecArgv(CPU_PROF ? join(PROFILE_DIR, 'model') : undefined), ...probeArgs],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  for (const [from, stream] of [
    [model.stdout, 'stdout'],
    [model.stderr, 'stderr'],
  ] as const) {
    if (from)
      createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (l) =>
        onLine('model', l, stream),
      )
  }
  model.once('exit', (code, signal) => log(`the model exited (${signal ?? code})`))
  const modelReady = new Promise<{ url: string }>((resolve, reject) => {
    model?.once('message', (msg) => resolve(msg as { url: string }))
    model?.once('exit', (code) => reject(new Error(`the model exited with ${code}`)))
  })
  model.send({ tokens: TOKENS, intervalMs: TOKEN_MS } satisfies PacedModelStart)
  const { url: modelUrl } = await modelReady
  pids.model = model.pid ?? -1

  log('\nstarting message-store, run-service and gateway ...')
  stack = await startStack({
    name: 'bench_streams',
    postgresUrl: hasPostgres ? DATABASE_URL : undefined,
    redisUrl: hasRedis ? REDIS_URL : undefined,
    persistentData: true,
    modelUrl,
    cpuProfDir: CPU_PROF ? PROFILE_DIR : undefined,
    nodeArgs: probeArgs,
    env: {
      all: { NODE_ENV: 'production', LOG_LEVEL: LOG_LEVEL },
      // the services' own pool sizes, not the harness's small ones
      'message-store': { DATABASE_POOL_MAX: undefined },
      'run-service': { DATABASE_POOL_MAX: undefined },
      gateway: { API_KEYS: `${TENANT}=${API_KEY}`, RATE_LIMIT_MAX: '0', DATA_DIR: 'memory://' },
    },
    onLine: (name, line, stream) => onLine(name, line, stream),
    onExit: (service, exit) => log(`${service.name} exited (${exit.signal ?? exit.code})`),
    readyTimeoutMs: 90_000,
    stopTimeoutMs: 15_000,
  })
  const { gateway } = stack.services
  for (const name of SERVICES) pids[name] = stack.services[name].child.pid ?? -1
  const schema = stack.schemas.messageStore
  log(
    `ports: gateway ${gateway.port}, run-service ${stack.services['run-service'].port}, message-store ${stack.services['message-store'].port}, model ${new URL(modelUrl).port}`,
  )

  const headers = { 'x-api-key': API_KEY }
  const flow = JSON.parse(
    await fetchExpecting(
      `${gateway.url}/api/v1/flows/`,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: await readFile(FIXTURE, 'utf8'),
      },
      201,
      'flow import',
    ),
  ) as { id: string }
  const target: Target = { host: '127.0.0.1', port: gateway.port, path: `/api/v1/run/${flow.id}?stream=true`, headers }

  storedOf = async (flowId, sessions) => {
    const stored: Stored = new Map()
    if (sessions.length === 0) return stored
    if (hasPostgres) {
      await withPg(DATABASE_URL, async (client) => {
        const rows = await client.query(
          `SELECT session_id, id::text AS id, sender, text FROM ${client.escapeIdentifier(schema)}.messages
            WHERE tenant_id = $1 AND flow_id = $2 AND session_id = ANY($3)`,
          [TENANT, flowId, sessions],
        )
        for (const row of rows.rows as { session_id: string; id: string; sender: string; text: string }[]) {
          const s = stored.get(row.session_id) ?? { replies: [], messages: 0 }
          s.messages++
          if (row.sender === 'Machine') s.replies.push({ id: row.id, text: row.text })
          stored.set(row.session_id, s)
        }
      })
      return stored
    }
    // no Postgres: the monitor API, a few sessions at a time
    const queue = [...sessions]
    const reader = async () => {
      for (let session = queue.pop(); session !== undefined; session = queue.pop()) {
        const page = JSON.parse(
          await fetchExpecting(
            `${gateway.url}/api/v1/monitor/messages?flow_id=${flowId}&session_id=${encodeURIComponent(session)}`,
            { headers },
            200,
            'monitor read',
          ),
        ) as { id: string; sender: string; text: string }[]
        stored.set(session, {
          replies: page.filter((m) => m.sender === 'Machine').map((m) => ({ id: m.id, text: m.text })),
          messages: page.length,
        })
      }
    }
    await Promise.all(Array.from({ length: 16 }, reader))
    return stored
  }

  // one run, checked, then a warm-up the services' code is compiled by
  const agent = new http.Agent({ keepAlive: true })
  const check = await streamRun({
    agent,
    ...target,
    session: `check-${TAG}`,
    input: `check-${TAG}`,
    timeoutMs: RUN_TIMEOUT_MS,
  })
  agent.destroy()
  if (!check.ended || check.tokens !== TOKENS || check.reply?.text !== pacedReply(check.input, TOKENS)) {
    throw new Error(`the check run did not stream as expected: ${JSON.stringify(check)}`)
  }
  log(
    `basic-prompting flow ${flow.id}: a run streams ${check.tokens} tokens in ${fmt(check.endedAt - check.startedAt)} ms`,
  )
  log(`warm-up: ${WARMUP_STREAMS} streams for ${WARMUP_S} s`)
  const warmAgent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
  const warm = closedLoop(WARMUP_STREAMS, target, warmAgent, 'warm')
  await sleep(WARMUP_S * 1000)
  await warm.stop()
  warmAgent.destroy()
  model.send({ forget: true } satisfies PacedModelRequest)
  await probeAll() // starts the event-loop delay windows afresh

  for (const streams of levels) {
    log(`\n${fmt(streams)} streams: ramp ${RAMP_S} s, plateau ${PLATEAU_S} s ...`)
    const r = await runLevel(streams, target, flow.id)
    results.push(r)
    log(
      `  runs ${fmt(r.stored)} ended and stored once of ${fmt(r.started)} (${fmt(r.runsPerSecond)}/s); gap added by the stack p50 ${ms1(r.stackGap.p50)} p99 ${ms1(r.stackGap.p99)} max ${ms1(r.stackGap.max)} ms over ${fmt(r.stackGap.count)} gaps (client gap − ${TOKEN_MS} ms: p50 ${ms1(r.addedGap.p50)} p99 ${ms1(r.addedGap.p99)}); token latency model → client p50 ${ms1(r.latency.p50)} p99 ${ms1(r.latency.p99)} ms; first token p50 ${fmt(r.firstToken.p50)} p99 ${fmt(r.firstToken.p99)} ms`,
    )
    log(
      `  runs last p50 ${fmt(r.duration.p50)} p99 ${fmt(r.duration.p99)} ms; ${fmt(r.tokensPerSecond)} tokens/s reach the clients; first token p50 ${fmt(r.firstToken.p50)} ms: headers at ${fmt(r.firstTokenParts.headers)}, user's message stored at ${fmt(r.firstTokenParts.stored)}`,
    )
    log(
      `  event-loop delay p99 ms: ${PROBED.map((n) => `${n} ${ms1(r.eld[n])}`).join(', ')}, load generator ${ms1(r.loadEld)}`,
    )
    log(
      `  heap per stream KB: ${PROBED.map((n) => `${n} ${kb(r.heapPerStream[n])}`).join(', ')} (${fmt(r.inFlightAtEnd)} in flight)`,
    )
    if (r.cpu) log(`  CPU cores: ${CPU_COLUMNS.map((c) => `${c} ${cores(r.cpu?.[c])}`).join(', ')}`)
    log(`  ${r.pass ? 'meets every target' : `missed: ${r.missed.join('; ')}`}`)
    if (!r.pass && !ALL_LEVELS) break
  }
} finally {
  await cleanUp()
}

const resultTable = table(results)
const cpus = cpuTable(results)
const found = findings(results)
log(
  `\n${resultTable.join('\n')}\n\nCPU during the plateau, in cores (of ${os.availableParallelism()}):\n\n${cpus.join('\n')}\n\n${found.join('\n')}`,
)
log(`(${fmt(infoLines)} log lines below warn from the services not shown; ${fmt(warnLines)} at warn or above)`)
if (CPU_PROF) {
  const out = await profileSummaries(PROFILE_DIR, 20, /^.*\/(services|packages)\//)
  log(`\nTop frames of each process:\n\n${out.join('\n\n')}`)
}

if (WRITE_DOCS && results.length > 0) {
  const section = sectionText([
    sectionHeading(startedAt, 'slow streams'),
    '',
    'Results of the slow-streams bench (`pnpm bench`, packages/bench/whole-stack/streams.ts); this section is replaced by each run.',
    '',
    ...machineLines(backends),
    `- processes: message-store, run-service and gateway each in its own Node process (\`src/server.ts\`, LOG_LEVEL ${LOG_LEVEL ?? 'not set: info'}, their default pool sizes); the fake OpenAI-compatible model in a fourth; the load generator (node:http, one keep-alive connection per stream) in the parent. Every process on the same ${os.availableParallelism()} cores`,
    `- load: basic-prompting flow (ChatInput → model ← Prompt, → ChatOutput), \`POST /api/v1/run/{flow}?stream=true\` through the gateway with an API key; the model streams ${TOKENS} tokens ${TOKEN_MS} ms apart (a run lasts about ${fmt(STREAM_MS / 1000, 1)} s); N streams in flight at all times (closed loop, each run its own new session), started over ${RAMP_S} s; ${PLATEAU_S} s measured after a settling second`,
    `- gap added by the stack: per token after a run's first, the gap the client saw since the one before minus the gap between the model's writes of those two words (the model's own lateness left out; "client gap − model interval" is the same gap minus ${TOKEN_MS} ms); token latency: the model's write → the client (one system clock); first token: from the request. Event-loop delay: perf_hooks.monitorEventLoopDelay (10 ms resolution, taken off) over the plateau; heap per stream: heap used after a forced GC at the plateau's end minus idle, ÷ N (bench-only preload whole-stack/probe.ts)`,
    `- targets: every run ends with \`end\` and its reply is stored once; gap added by the stack p99 < ${TARGET.addedGapP99Ms} ms; event-loop delay p99 < ${TARGET.eldP99Ms} ms in every service; heap per stream < ${TARGET.heapPerStreamBytes / 1024} KB`,
    ...(CPU_PROF ? ['- profiled with --cpu-prof: numbers are lower than without'] : []),
    '',
    ...resultTable,
    '',
    `CPU during the plateau, in cores (of ${os.availableParallelism()}):`,
    '',
    ...cpus,
    '',
    '### What it shows',
    '',
    ...found,
    '',
  ])
  const intro =
    '# Benchmarks\n\nResults of `pnpm bench`, newest first. ' +
    'Compare ratios within one run, not absolute numbers across runs (see performance-notes).\n'
  let previous = ''
  try {
    previous = await readFile(DOCS, 'utf8')
  } catch {}
  await writeFile(DOCS, withOwnSection(previous, section, intro, HEADING))
  log(`\nwrote ${DOCS}`)
} else {
  log(DOCS_NOT_WRITTEN)
}
