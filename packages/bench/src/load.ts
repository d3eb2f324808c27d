// Settings and autocannon results, as every bench reads them.
import type autocannon from 'autocannon'

/** A setting from the environment: a positive number, else `fallback`. */
export function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value)
  return value && Number.isFinite(n) && n > 0 ? n : fallback
}

/**
 * What every bench reads of its environment: BENCH_DURATION (s per measured run, 10), BENCH_WARMUP (s, 3 or
 * the duration if shorter), BENCH_CONNECTIONS (50), BENCH_SESSIONS (`sessions`).
 */
export function loadSettings(env: NodeJS.ProcessEnv, sessions: number) {
  const duration = positiveInt(env.BENCH_DURATION, 10)
  return {
    duration,
    warmup: positiveInt(env.BENCH_WARMUP, Math.min(3, duration)),
    connections: positiveInt(env.BENCH_CONNECTIONS, 50),
    sessions: positiveInt(env.BENCH_SESSIONS, sessions),
  }
}

/** Whether a bench writes docs/benchmarks.md: BENCH_DOCS=0|1, by default only for runs of 10 s or more. */
export function writeDocsWanted(benchDocs: string | undefined, duration: number): boolean {
  return benchDocs ? benchDocs === '1' : duration >= 10
}

export const DOCS_NOT_WRITTEN = '\n(docs/benchmarks.md not written: short run; set BENCH_DOCS=1 to write it anyway)'

/** One measured run: 2xx responses per second, latency percentiles in ms, failed requests. */
export interface Measured {
  reqs: number
  p50: number
  p99: number
  errors: number
}

type LoadResult = Pick<autocannon.Result, '2xx' | 'duration' | 'latency' | 'non2xx' | 'errors' | 'timeouts'>

/** What a bench keeps of an autocannon run: only 2xx answers count as throughput; non-2xx, errors and timeouts as errors. */
export function measured(result: LoadResult): Measured {
  return {
    reqs: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors + result.timeouts,
  }
}

/** A request made before the load (set-up, checks): its body, or an error when the status is not `status`. */
export async function fetchExpecting(url: string, init: RequestInit, status: number, what: string): Promise<string> {
  const res = await fetch(url, init)
  const text = await res.text()
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${text.slice(0, 300)}`)
  return text
}
