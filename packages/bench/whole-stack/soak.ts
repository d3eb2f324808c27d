/**
 * `pnpm soak` (root; not in CI): SOAK_MINUTES (default 10, at least 2) of mixed runs and monitor reads through the
 * gateway, on real Postgres and Redis, the three services as child processes started like
 * scripts/start.mjs starts them (startStack of @session-runtime/stack). The first minute is warm-up. Records:
 *   - errors: any answer that is not 2xx, a network error, a timeout, a stream that does not end with `end`
 *     (target 0);
 *   - latency per minute (p50, p99, count; runs and reads apart; per request kind in minute 2 and the last);
 *   - each service's memory, sampled every 5 s. The verdict is the V8 heap right after a major GC:
 *     `nodejs_heap_used_after_major_gc_bytes` from the service's own GET /metrics (service-kit's metrics plugin
 *     sets it at each major, mark-sweep-compact, collection), which is what the process retains without the
 *     garbage of the moment, so a leak shows as a rising value. Each new value of the gauge is one major GC (two
 *     within 5 s show as one); start = the mean of the values first seen in minute 2 (the first after warm-up),
 *     end = the mean of those of the last minute, target growth ≤ 10%. The mean, not the median: a window holds
 *     few values (at most one per sample) and the mean uses them all. A window with no new value (no major GC) is widened by 15 s on each side (within the
 *     load) until it holds one, and the output says so. Heap-used samples (`nodejs_heap_size_used_bytes`) are
 *     not used: they swing several-fold between major GCs, and 5 s samples miss the trough after a collection.
 *     RSS (VmRSS from /proc/<pid>/status; start and end the medians of the same minutes, and the peak) is
 *     reported as information only: it swings by ±25% between samples with the allocator's and the GC's
 *     behaviour (heap pages kept or returned), which says little about retained objects. A sample that fails
 *     is missing, not an error;
 *   - afterwards, the stored messages counted in Postgres against the acknowledged runs (2 messages each).
 * Prints a table and writes (replaces) the "Soak" section of docs/reliability.md (SOAK_DOCS=0: not).
 *
 * Load: SOAK_CONCURRENCY (default 8) closed-loop workers, each sending one request after the other:
 *   45% POST /api/v1/run/memory-echo (Memory Echo: stores the input, reads the session's history from the
 *       message-store's cache, stores the reply), 10% the same streamed (?stream=true),
 *   25% GET /api/v1/monitor/messages of one session, 10% GET /api/v1/monitor/sessions (50),
 *   10% GET /api/v1/monitor/messages of the flow, newest 100.
 * Sessions: SOAK_SESSIONS (default 200) slots; a slot's session is replaced by a new one after 20 runs, so
 * histories stay short (as chats do) and new sessions keep arriving.
 *
 * Settings: SOAK_MINUTES, SOAK_CONCURRENCY, SOAK_SESSIONS, SOAK_DATABASE_URL
 * (postgres://postgres@127.0.0.1:5432/postgres), SOAK_REDIS_URL (redis://127.0.0.1:6379), SOAK_LOG_LEVEL
 * (warn), SOAK_DOCS (1). Own Postgres schemas and Redis key prefix, removed afterwards. On a server with
 * autovacuum off, the soak runs `VACUUM (ANALYZE)` on its own schemas once a minute in its place (and says so).
 */
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import {
  type ProcessStack,
  postgresVersion,
  redisVersion,
  type ServiceName,
  sleep,
  startStack,
  withPg,
} from '@session-runtime/stack'
import { fmt, positiveInt as num } from '../src/index.js'
import { findBackends } from './backends.js'

const env = process.env
const MINUTES = Math.max(2, Math.round(num(env.SOAK_MINUTES, 10)))
const CONCURRENCY = num(env.SOAK_CONCURRENCY, 8)
const SESSIONS = num(env.SOAK_SESSIONS, 200)
const RUNS_PER_SESSION = 20
const LOG_LEVEL = env.SOAK_LOG_LEVEL ?? 'warn'
const WRITE_DOCS = env.SOAK_DOCS !== '0'
const WARMUP_MS = 60_000
const SAMPLE_MS = 5_000
const WINDOW_MS = 60_000
const REQUEST_TIMEOUT_MS = 30_000
const MAX_GROWTH = 0.1

const TENANT = 'soak-tenant'
const API_KEY = `soak-key-${randomBytes(12).toString('hex')}`

const DOCS = fileURLToPath(new URL('../../../docs/reliability.md', import.meta.url))

const log = (line: string) => console.log(line)

// ---------------------------------------------------------------- backends

const { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, hasPostgres, hasRedis } = await findBackends('SOAK')
if (!hasPostgres || !hasRedis) {
  console.error(
    `The soak runs on Postgres and Redis: ${hasPostgres ? '' : `no Postgres at ${DATABASE_URL}; `}` +
      `${hasRedis ? '' : `no Redis at ${REDIS_URL}; `}start them (or set SOAK_DATABASE_URL / SOAK_REDIS_URL).`,
  )
  process.exit(1)
}

async function backendVersions(): Promise<string> {
  return `Postgres ${(await postgresVersion(DATABASE_URL))?.split(' ')[0]}, Redis ${await redisVersion(REDIS_URL)}`
}

// ---------------------------------------------------------------- processes

let serviceErrors = 0

/**
 * The three services on the soak's Postgres and Redis (own schemas and key prefix, removed at stop). Their
 * output is passed on (with LOG_LEVEL=warn every line is worth seeing), lines at error level counted; a
 * service that exits during the soak fails it.
 */
function startSoakStack(): Promise<ProcessStack> {
  return startStack({
    name: 'soak',
    postgresUrl: DATABASE_URL,
    redisUrl: REDIS_URL,
    logLevel: LOG_LEVEL,
    env: {
      all: { NODE_ENV: 'production' },
      'message-store': { DATABASE_POOL_MAX: undefined },
      'run-service': { DATABASE_POOL_MAX: undefined },
      // /metrics open: the heap is sampled there
      gateway: { API_KEYS: `${TENANT}=${API_KEY}`, METRICS_TOKEN: '' },
    },
    onLine: (name, line) => {
      if (/"level":(50|60)/.test(line)) serviceErrors++
      process.stderr.write(`[${name}] ${line}\n`)
    },
    onExit: (service, exit) => {
      console.error(`${service.name} exited during the soak (${exit.signal ?? exit.code})`)
      process.exitCode = 1
    },
    readyTimeoutMs: 90_000,
    stopTimeoutMs: 15_000,
  })
}

/** VmRSS of a process, in bytes (Linux); undefined when it cannot be read. */
async function rss(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/**
 * `nodejs_heap_used_after_major_gc_bytes` from a service's /metrics, in bytes; undefined when it cannot be read or
 * has no sample yet (no major GC since the service started).
 */
async function heapAfterMajorGc(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(SAMPLE_MS - 1000) })
    const text = await res.text()
    const value = Number(/^nodejs_heap_used_after_major_gc_bytes(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1])
    return res.ok && Number.isFinite(value) && value > 0 ? value : undefined
  } catch {
    return undefined
  }
}

/** Busy jiffies of the machine and user + system jiffies of the given processes (Linux). */
async function cpuTicks(pids: (number | undefined)[]): Promise<{ machine: number; ours: number } | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.split(/\s+/).slice(1).map(Number)
    let ours = 0
    for (const pid of pids) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ours += Number(fields[11]) + Number(fields[12])
    }
    return { machine: user + nice + system + irq + softirq + steal, ours }
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------- load

type Kind = 'run' | 'run-stream' | 'session-history' | 'session-list' | 'flow-page'
const MIX: [Kind, number][] = [
  ['run', 0.45],
  ['run-stream', 0.1],
  ['session-history', 0.25],
  ['session-list', 0.1],
  ['flow-page', 0.1],
]

interface Minute {
  latencies: number[]
  /** Latencies of runs (streamed or not) and of monitor reads, apart. */
  runs: number[]
  reads: number[]
  byKind: Map<Kind, number[]>
  errors: number
  /** The machine's 1-minute load average at the minute's last sample (other work on the machine shows here). */
  load?: number
  /** RSS at the minute's last sample. */
  rss: Partial<Record<ServiceName, number>>
}

const minutes: Minute[] = []
const errorsByKind = new Map<string, number>()
const errorSamples: string[] = []
const countByKind = new Map<Kind, number>()
let acknowledgedRuns = 0

function pick(): Kind {
  let r = Math.random()
  for (const [kind, share] of MIX) {
    r -= share
    if (r < 0) return kind
  }
  return 'run'
}

const slots = Array.from({ length: SESSIONS }, (_, i) => ({ id: `soak-${i}-0`, generation: 0, runs: 0 }))
/** Sessions that have at least one acknowledged run: the monitor reads pick from these. */
const used: string[] = []
const usedSet = new Set<string>()

function sessionForRun() {
  const slot = slots[Math.floor(Math.random() * slots.length)] as (typeof slots)[number]
  if (slot.runs >= RUNS_PER_SESSION) {
    slot.generation++
    slot.runs = 0
    slot.id = slot.id.replace(/-\d+$/, `-${slot.generation}`)
  }
  slot.runs++
  return slot.id
}

async function one(gatewayUrl: string, flowId: string, kind: Kind): Promise<void> {
  const headers: Record<string, string> = { 'x-api-key': API_KEY }
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  if (kind === 'run' || kind === 'run-stream') {
    const session = sessionForRun()
    const stream = kind === 'run-stream'
    const res = await fetch(`${gatewayUrl}/api/v1/run/memory-echo${stream ? '?stream=true' : ''}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ input_value: `message ${randomBytes(6).toString('hex')}`, session_id: session }),
      signal,
    })
    const text = await res.text()
    if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 200)}`)
    if (stream) {
      const last = text.trim().split('\n').at(-1) ?? ''
      if (!last.startsWith('{"event":"end"')) throw new Error(`stream ended with ${last.slice(0, 200)}`)
    }
    acknowledgedRuns++
    if (!usedSet.has(session)) {
      usedSet.add(session)
      used.push(session)
    }
    return
  }
  const session = used[Math.floor(Math.random() * used.length)] ?? 'none'
  const path =
    kind === 'session-history'
      ? `/api/v1/monitor/messages?flow_id=${flowId}&session_id=${encodeURIComponent(session)}`
      : kind === 'session-list'
        ? `/api/v1/monitor/sessions?flow_id=${flowId}&limit=50`
        : `/api/v1/monitor/messages?flow_id=${flowId}&order=DESC&limit=100`
  const res = await fetch(`${gatewayUrl}${path}`, { headers, signal })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 200)}`)
}

// ---------------------------------------------------------------- main

const startedAt = new Date()
const mib = (bytes: number | undefined) =>
  bytes === undefined || !Number.isFinite(bytes) ? '—' : `${fmt(bytes / 2 ** 20, 1)}`
const quantile = (sorted: number[], q: number) =>
  sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number)
const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  )

let stored = Number.NaN
let storedReplies = Number.NaN
type PerService = Partial<Record<ServiceName, number>>
const samples: { at: number; rss: PerService; heap: PerService }[] = []
let loadStartedAt = 0
let loadEndedAt = 0
let versions = ''
/** The server's `autovacuum` setting; when off, the soak vacuums its own schemas once a minute (durations here). */
let AUTOVACUUM = true
const vacuums: number[] = []
let cpu: { machine: number; ours: number } | undefined
let stack: ProcessStack | undefined
try {
  versions = await backendVersions()
  AUTOVACUUM = await withPg(DATABASE_URL, async (client) => {
    const { rows } = await client.query<{ autovacuum: string }>('SHOW autovacuum')
    return rows[0]?.autovacuum !== 'off'
  })
  log(`soak: ${MINUTES} min (1 min warm-up), ${CONCURRENCY} workers, ${SESSIONS} session slots; ${versions}`)
  stack = await startSoakStack()
  const { gatewayUrl, schemas } = stack
  const services = Object.values(stack.services)
  const flows = (await (await fetch(`${gatewayUrl}/api/v1/flows/`, { headers: { 'x-api-key': API_KEY } })).json()) as {
    id: string
    endpoint_name?: string
  }[]
  const flowId = flows.find((f) => f.endpoint_name === 'memory-echo')?.id
  if (!flowId) throw new Error('the Memory Echo example flow is missing')

  const ourPids = () => [process.pid, ...services.map((svc) => svc.child.pid)]
  const cpuBefore = await cpuTicks(ourPids())
  loadStartedAt = Date.now()
  const endAt = loadStartedAt + MINUTES * 60_000
  const minuteOf = (t: number) => Math.min(MINUTES - 1, Math.floor((t - loadStartedAt) / 60_000))
  for (let m = 0; m < MINUTES; m++)
    minutes.push({ latencies: [], runs: [], reads: [], byKind: new Map(), errors: 0, rss: {} })

  // A Postgres with autovacuum off (this dev machine's is) never vacuums nor analyzes: the sessions table (one
  // update per stored message) fills with dead rows and the planner has no statistics, so every minute would
  // be slower for reasons of the server's settings, not of the services. Then the soak does autovacuum's job
  // itself, once a minute, on its own schemas only, and says so.
  const vacuumer = AUTOVACUUM
    ? undefined
    : (async () => {
        for (let at = Date.now() + 60_000; at < endAt; at += 60_000) {
          await sleep(Math.max(0, at - Date.now()))
          if (Date.now() >= endAt) break
          const t0 = performance.now()
          await withPg(DATABASE_URL, async (client) => {
            const { rows } = await client.query<{ t: string }>(
              `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = ANY($1)`,
              [[schemas.messageStore, schemas.runService]],
            )
            for (const { t } of rows) await client.query(`VACUUM (ANALYZE) ${t}`)
          }).catch((err) => log(`  VACUUM (ANALYZE) failed: ${err instanceof Error ? err.message : err}`))
          vacuums.push(performance.now() - t0)
        }
      })()
  const sampler = (async () => {
    for (let at = Date.now(); at < endAt; at += SAMPLE_MS) {
      await sleep(Math.max(0, at - Date.now()))
      const rssNow: PerService = {}
      const heapNow: PerService = {}
      await Promise.all(
        services.map(async (s) => {
          ;[rssNow[s.name], heapNow[s.name]] = await Promise.all([rss(s.child.pid), heapAfterMajorGc(s.url)])
        }),
      )
      samples.push({ at, rss: rssNow, heap: heapNow })
      const minute = minutes[minuteOf(at)]
      if (minute) {
        minute.rss = rssNow
        minute.load = os.loadavg()[0]
      }
    }
  })()
  let reported = 0
  const report = (minute: number) =>
    log(
      `  minute ${minute + 1}: ${fmt(minutes[minute]?.latencies.length ?? 0)} requests, ${minutes[minute]?.errors ?? 0} errors`,
    )
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < endAt) {
      const kind = pick()
      const t0 = performance.now()
      const at = Date.now()
      try {
        await one(gatewayUrl, flowId, kind)
      } catch (err) {
        const minute = minutes[minuteOf(at)]
        if (minute) minute.errors++
        errorsByKind.set(kind, (errorsByKind.get(kind) ?? 0) + 1)
        if (errorSamples.length < 10) errorSamples.push(`${kind}: ${(err as Error).message}`)
      }
      const elapsed = performance.now() - t0
      const minute = minutes[minuteOf(at)]
      minute?.latencies.push(elapsed)
      ;(kind.startsWith('run') ? minute?.runs : minute?.reads)?.push(elapsed)
      if (minute && !minute.byKind.has(kind)) minute.byKind.set(kind, [])
      minute?.byKind.get(kind)?.push(elapsed)
      countByKind.set(kind, (countByKind.get(kind) ?? 0) + 1)
      if (minuteOf(Date.now()) > reported) report(reported++)
    }
  })
  await Promise.all([...workers, sampler, vacuumer])
  while (reported < MINUTES) report(reported++)
  loadEndedAt = Date.now()
  const cpuAfter = await cpuTicks(ourPids())
  if (cpuBefore && cpuAfter) {
    // Jiffies are 1/100 s on Linux.
    const seconds = ((loadEndedAt - loadStartedAt) / 1000) * 100
    cpu = {
      machine: (cpuAfter.machine - cpuBefore.machine) / seconds,
      ours: (cpuAfter.ours - cpuBefore.ours) / seconds,
    }
  }

  // Nothing acknowledged lost: every acknowledged run stored its question and its reply.
  await withPg(DATABASE_URL, async (client) => {
    const { rows } = await client.query<{ all: string; replies: string }>(
      `SELECT count(*) AS all, count(*) FILTER (WHERE sender = 'Machine') AS replies FROM "${schemas.messageStore}".messages`,
    )
    stored = Number(rows[0]?.all)
    storedReplies = Number(rows[0]?.replies)
  })
} finally {
  await stack?.stop().catch((err) => console.error(`clean-up: ${(err as Error).message}`))
}

// ---------------------------------------------------------------- report

const names: ServiceName[] = ['gateway', 'run-service', 'message-store']
const loadEnd = loadStartedAt + MINUTES * 60_000
// Minute 2 (the first after warm-up) and the load's last minute, as in the per-minute table (loadEndedAt is
// later, by the requests still in flight at the end, when no samples are taken).
const startFrom = loadStartedAt + WARMUP_MS
const endFrom = loadEnd - WINDOW_MS
const window = (from: number, to: number) => samples.filter((s) => s.at >= from && s.at < to)
const rssSeries = (from: typeof samples, name: ServiceName) =>
  from.map((s) => s.rss[name]).filter((v): v is number => v !== undefined)
const mean = (values: number[]) =>
  values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length
const clock = (ms: number) => {
  const seconds = Math.round(ms / 1000)
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`
}

/**
 * Each service's major GCs as its gauge showed them: a new value, at the sample that first saw it (the first value
 * may be from before the load, at start-up).
 */
const majorGcs = Object.fromEntries(
  names.map((name) => {
    const seen: { at: number; bytes: number }[] = []
    for (const { at, heap } of samples) {
      const bytes = heap[name]
      if (bytes !== undefined && bytes !== seen.at(-1)?.bytes) seen.push({ at, bytes })
    }
    return [name, seen]
  }),
) as Record<ServiceName, { at: number; bytes: number }[]>

/**
 * The heap after major GC over [from, to): the mean of the values first seen there. A window where none was seen
 * is widened by 15 s on each side (within the load) until it holds one; `widened` tells how far (load clock).
 */
function heapAfterGc(name: ServiceName, from: number, to: number) {
  const inside = (a: number, b: number) => majorGcs[name].filter((gc) => gc.at >= a && gc.at < b)
  let [a, b] = [from, to]
  let gcs = inside(a, b)
  while (gcs.length === 0 && (a > loadStartedAt || b < loadEnd)) {
    a = Math.max(loadStartedAt, a - 15_000)
    b = Math.min(loadEnd, b + 15_000)
    gcs = inside(a, b)
  }
  const widened = a !== from || b !== to ? `${clock(a - loadStartedAt)}–${clock(b - loadStartedAt)}` : undefined
  return { bytes: mean(gcs.map((gc) => gc.bytes)), gcs: gcs.length, widened }
}

const memoryRows = names.map((name) => {
  // The verdict: the heap after major GC. RSS: information only.
  const heapStart = heapAfterGc(name, startFrom, startFrom + WINDOW_MS)
  const heapEnd = heapAfterGc(name, endFrom, endFrom + WINDOW_MS)
  const heapGrowth = heapEnd.bytes / heapStart.bytes - 1
  const rssStart = median(rssSeries(window(startFrom, startFrom + WINDOW_MS), name))
  const rssEnd = median(rssSeries(window(endFrom, endFrom + WINDOW_MS), name))
  const rssPeak = Math.max(...rssSeries(samples, name))
  return { name, heapStart, heapEnd, heapGrowth, pass: heapGrowth <= MAX_GROWTH, rssStart, rssEnd, rssPeak }
})
const pct = (ratio: number) => (Number.isFinite(ratio) ? `${ratio >= 0 ? '+' : ''}${fmt(ratio * 100, 1)}%` : '—')
const heapCell = ({ bytes, gcs, widened }: ReturnType<typeof heapAfterGc>) =>
  `${mib(bytes)} (${gcs}${widened ? `; none in the minute, widened to ${widened}` : ''})`
const majorGcsSeen = names.map((name) => `${name} ${majorGcs[name].length}`).join(', ')
const widenings = memoryRows.flatMap((r) =>
  [
    ['minute 2', r.heapStart.widened],
    ['the last minute', r.heapEnd.widened],
  ]
    .filter(([, widened]) => widened)
    .map(([minute, widened]) => `${r.name} in ${minute} (widened to ${widened})`),
)
const totalRequests = minutes.reduce((sum, m) => sum + m.latencies.length, 0)
const totalErrors = minutes.reduce((sum, m) => sum + m.errors, 0)
const allLatencies = minutes.flatMap((m) => m.latencies).sort((a, b) => a - b)
const afterWarmup = minutes
  .slice(1)
  .flatMap((m) => m.latencies)
  .sort((a, b) => a - b)

const minuteTable = [
  '| minute | requests | req/s | errors | p50 ms | p99 ms | p99 runs ms | p99 reads ms | load avg | heap after major GC MiB, mean (major GCs seen) gateway / run-service / message-store | RSS (last sample; info) MiB |',
  '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ...minutes.map((m, i) => {
    const sorted = [...m.latencies].sort((a, b) => a - b)
    const p99 = (values: number[]) =>
      fmt(
        quantile(
          [...values].sort((a, b) => a - b),
          0.99,
        ),
        1,
      )
    const from = loadStartedAt + i * 60_000
    const heap = names
      .map((n) => {
        const gcs = majorGcs[n].filter((gc) => gc.at >= from && gc.at < from + 60_000).map((gc) => gc.bytes)
        return `${mib(mean(gcs))} (${gcs.length})`
      })
      .join(' / ')
    const rssMiB = names.map((n) => mib(m.rss[n])).join(' / ')
    return `| ${i + 1}${i === 0 ? ' (warm-up)' : ''} | ${fmt(sorted.length)} | ${fmt(sorted.length / 60)} | ${m.errors} | ${fmt(quantile(sorted, 0.5), 1)} | ${fmt(quantile(sorted, 0.99), 1)} | ${p99(m.runs)} | ${p99(m.reads)} | ${fmt(m.load ?? Number.NaN, 1)} | ${heap} | ${rssMiB} |`
  }),
]
const memoryTable = [
  `| service | heap after major GC, minute 2 MiB (major GCs seen) | heap after major GC, last minute MiB (major GCs seen) | heap growth | ≤ ${fmt(MAX_GROWTH * 100)}% | RSS minute 2 MiB (info) | RSS last minute MiB (info) | RSS growth (info) | RSS peak MiB (info) |`,
  '|---|--:|--:|--:|:-:|--:|--:|--:|--:|',
  ...memoryRows.map(
    (r) =>
      `| ${r.name} | ${heapCell(r.heapStart)} | ${heapCell(r.heapEnd)} | ${pct(r.heapGrowth)} | ${r.pass ? '✔' : '✘'} | ${mib(r.rssStart)} | ${mib(r.rssEnd)} | ${pct(r.rssEnd / r.rssStart - 1)} | ${mib(r.rssPeak)} |`,
  ),
]
const p99Of = (values: number[] | undefined) =>
  fmt(
    quantile(
      [...(values ?? [])].sort((a, b) => a - b),
      0.99,
    ),
    1,
  )
const kindTable = [
  `| request | share | p99 minute 2 ms | p99 minute ${MINUTES} ms |`,
  '|---|--:|--:|--:|',
  ...MIX.map(
    ([kind, share]) =>
      `| ${kind} | ${fmt(share * 100)}% | ${p99Of(minutes[1]?.byKind.get(kind))} | ${p99Of(minutes.at(-1)?.byKind.get(kind))} |`,
  ),
]
const kinds = MIX.map(([kind]) => `${kind} ${fmt(countByKind.get(kind) ?? 0)}`).join(', ')
const lost = acknowledgedRuns * 2 - stored
const summary = [
  `- requests: ${fmt(totalRequests)} (${kinds}); ${fmt(totalRequests / ((loadEndedAt - loadStartedAt) / 1000))} req/s on average`,
  `- errors: ${totalErrors} (target 0)${totalErrors > 0 ? `: ${[...errorsByKind].map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}; service log lines at error level: ${serviceErrors}`,
  `- latency over all requests: p50 ${fmt(quantile(allLatencies, 0.5), 1)} ms, p99 ${fmt(quantile(allLatencies, 0.99), 1)} ms; after warm-up p99 ${fmt(quantile(afterWarmup, 0.99), 1)} ms, max ${fmt(afterWarmup.at(-1) ?? Number.NaN, 1)} ms`,
  `- acknowledged runs ${fmt(acknowledgedRuns)}, messages stored in Postgres ${fmt(stored)} (${fmt(storedReplies)} replies): ${lost === 0 && storedReplies === acknowledgedRuns ? 'every acknowledged run stored its question and its reply, nothing lost' : `**${fmt(lost)} messages missing or extra**`}`,
  `- memory, the verdict (V8 heap right after a major GC, i.e. what the process retains: \`nodejs_heap_used_after_major_gc_bytes\` from each service's /metrics every 5 s, each new value one major GC (two within 5 s show as one); major GCs seen: ${majorGcsSeen}; start = the mean of the values first seen in minute 2, the first after warm-up; end = the same for the last minute${widenings.length > 0 ? `; no major GC seen: ${widenings.join(', ')}` : ''}): ${
    memoryRows.every((r) => r.pass)
      ? 'no service grew more than 10%'
      : `**over the 10% target (or no major GC seen): ${memoryRows
          .filter((r) => !r.pass)
          .map((r) => r.name)
          .join(', ')}**`
  }`,
  `- RSS (VmRSS every 5 s; medians of the same minutes, and the peak) is information, not the verdict: it swings by ±25% between samples with the allocator's and the GC's behaviour, not with what the process retains`,
]
summary.push(
  AUTOVACUUM
    ? '- Postgres: autovacuum on (the server vacuums and analyzes the tables itself)'
    : `- Postgres: **autovacuum is off on this server**, so the soak ran \`VACUUM (ANALYZE)\` on its own schemas once a minute in its place (${vacuums.length} times, ${fmt(Math.max(0, ...vacuums))} ms at most): without it the sessions table (one update per stored message) fills with dead rows and the planner has no statistics, and the run measures that setting rather than the services`,
)
if (cpu) {
  summary.push(
    `- CPU (mean over the run, in cores of ${os.availableParallelism()}): machine busy ${fmt(cpu.machine, 2)}; the soak's own Node processes (3 services + load generator) ${fmt(cpu.ours, 2)}; everything else (Postgres, Redis, other work on the machine) ${fmt(cpu.machine - cpu.ours, 2)}`,
  )
}
for (const sample of errorSamples) summary.push(`  - e.g. ${sample}`)

log(`\n${minuteTable.join('\n')}\n\n${kindTable.join('\n')}\n\n${memoryTable.join('\n')}\n\n${summary.join('\n')}`)

if (WRITE_DOCS && loadEndedAt > 0) {
  const date = startedAt.toISOString().slice(0, 10)
  const time = startedAt.toISOString().slice(11, 16)
  const section = [
    '## Soak',
    '',
    `Results of \`pnpm soak\` (packages/bench/whole-stack/soak.ts; not in CI), run ${date} ${time} UTC; this section is replaced by each run.`,
    '',
    `- machine: ${os.availableParallelism()} cores, ${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${fmt(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; ${versions}`,
    `- ${MINUTES} minutes (the first is warm-up) of ${CONCURRENCY} closed-loop workers through the gateway: 45% runs of Memory Echo, 10% streamed runs, 25% monitor reads of one session, 10% session lists, 10% newest 100 messages of the flow; ${SESSIONS} session slots, each a new session after ${RUNS_PER_SESSION} runs`,
    `- message-store, run-service and gateway each in its own Node process (\`src/server.ts\`, NODE_ENV=production, LOG_LEVEL=${LOG_LEVEL}); the load generator (fetch) in a fourth, on the same machine`,
    ...(MINUTES < 10 ? [`- **a short run (SOAK_MINUTES=${MINUTES}), not the 10 minutes of the target**`] : []),
    '',
    ...summary,
    '',
    ...minuteTable,
    '',
    ...kindTable,
    '',
    ...memoryTable,
    '',
  ].join('\n')
  let doc = ''
  try {
    doc = await readFile(DOCS, 'utf8')
  } catch {
    doc = '# Reliability\n\n'
  }
  // Replaces the section from its heading to the next heading of the same level, keeping any hand-written
  // "### Notes" of the previous run.
  const start = doc.search(/^## Soak\s*$/m)
  if (start < 0) {
    doc = `${doc.trimEnd()}\n\n${section}`
  } else {
    const rest = doc.slice(start + 1)
    const next = rest.search(/^## /m)
    const end = next < 0 ? doc.length : start + 1 + next
    const old = doc.slice(start, end)
    const notesAt = old.search(/^### Notes/m)
    const notes = notesAt < 0 ? '' : `${old.slice(notesAt).trimEnd()}\n\n`
    doc = `${doc.slice(0, start)}${section}${notes ? `\n${notes}` : '\n'}${doc.slice(end)}`
  }
  await writeFile(DOCS, `${doc.trimEnd()}\n`)
  log(`\nwrote the Soak section of ${DOCS}`)
}
