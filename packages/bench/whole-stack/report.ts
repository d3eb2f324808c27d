/**
 * Pure helpers of the gateway bench (whole-stack/run.ts): numbers, the gateway's cost
 * as a ratio, the results table and the docs/benchmarks.md section. No I/O here,
 * so test/whole-stack-report.test.ts can check them.
 */
import { fmt, type Measured, pct } from '../src/index.js'

/** The issue's target: the gateway may cost at most this share of the direct throughput. */
export const MAX_LOSS = 0.25

/** Share of the direct throughput lost by going through the gateway (0.2 = 20% fewer req/s); never below 0. */
export function throughputLoss(direct: number, viaGateway: number): number {
  if (!(direct > 0)) return Number.NaN
  return Math.max(0, (direct - viaGateway) / direct)
}

/** CPU time per request in µs, from the cores a process used during a run and the run's req/s. */
export function microsPerRequest(cores: number, reqs: number): number {
  return reqs > 0 ? (cores / reqs) * 1e6 : Number.NaN
}

export interface Verdict {
  pass: boolean
  detail: string
}

/** The gateway's cost against the target (≤ 25% fewer req/s than direct). */
export function lossVerdict(loss: number, max: number = MAX_LOSS): Verdict {
  if (Number.isNaN(loss)) return { pass: false, detail: 'no direct measurement to compare with' }
  if (loss <= max) return { pass: true, detail: `${pct(loss)} fewer req/s than direct (target ≤ ${pct(max)})` }
  return {
    pass: false,
    detail: `${pct(loss)} fewer req/s than direct, ${fmt((loss - max) * 100)} points over the ${pct(max)} target`,
  }
}

/** Rounds of one scenario combined: mean req/s, p50 and p99 (rounds are of equal length), errors summed. */
export function combine(rounds: Measured[]): Measured {
  if (rounds.length === 0) throw new Error('no rounds to combine')
  const mean = (f: (m: Measured) => number) => rounds.reduce((sum, m) => sum + f(m), 0) / rounds.length
  return {
    reqs: mean((m) => m.reqs),
    p50: mean((m) => m.p50),
    p99: mean((m) => m.p99),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0),
  }
}

export interface Row extends Measured {
  id: string
  scenario: string
  /** req/s against the bare-Fastify baseline answering the same request. */
  vsBaseline?: number
  /** Gateway rows: throughput lost against the direct row of the same request, and its verdict. */
  loss?: number
  verdict?: Verdict
  /** Gateway rows: p50 / p99 added to the direct row's, in ms. */
  addedP50?: number
  addedP99?: number
}

const dash = (v: number | undefined, f: (n: number) => string) => (v === undefined || Number.isNaN(v) ? '—' : f(v))
const ms = (n: number) => fmt(n, 1)
const plusMs = (n: number) => `${n >= 0 ? '+' : '−'}${fmt(Math.abs(n), 1)}`

/** The results as a Markdown table (also printed: it reads well in a terminal). */
export function resultsTable(rows: Row[]): string[] {
  return [
    '| scenario | req/s | p50 ms | p99 ms | vs baseline | gateway cost (req/s) | added p50/p99 ms | ≤ 25% loss |',
    '|---|--:|--:|--:|--:|--:|--:|:-:|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${fmt(r.reqs)} | ${ms(r.p50)} | ${ms(r.p99)} | ${dash(r.vsBaseline, pct)} | ${dash(
          r.loss,
          (l) => `−${pct(l)}`,
        )} | ${r.addedP50 === undefined ? '—' : `${plusMs(r.addedP50)} / ${plusMs(r.addedP99 ?? 0)}`} | ${
          r.verdict ? (r.verdict.pass ? '✔' : '✘') : '—'
        }${r.errors ? ` (${fmt(r.errors)} errors)` : ''} |`,
    ),
  ]
}

export const GATEWAY_HEADING = /^## .* — gateway \(/

/** Hand-written notes under a bench's section (`### Notes …` to the section's end) outlive the next run. */
const NOTES = /^### Notes\b[\s\S]*$/m

/**
 * docs/benchmarks.md with `section` (starting with `## … — gateway (…)`) as the
 * newest entry: the previous gateway section is removed, but for its `### Notes`
 * (carried over under the new one); the intro and every other section (the
 * message-store's) are kept byte for byte.
 */
export function withGatewaySection(doc: string, section: string, intro: string): string {
  return withOwnSection(doc, section, intro, GATEWAY_HEADING)
}

/**
 * docs/benchmarks.md with `section` as the newest entry (first under the intro): the previous section whose
 * heading line matches `heading` (a bench's own) is removed, but for its `### Notes` (carried over under the
 * new one); the intro and every other section are kept byte for byte.
 */
export function withOwnSection(doc: string, section: string, intro: string, heading: RegExp): string {
  const first = doc.search(/^## /m)
  const head = (first >= 0 ? doc.slice(0, first) : doc).trimEnd() || intro.trimEnd()
  const parts = first >= 0 ? doc.slice(first).split(/^(?=## )/m) : []
  const notes = parts.filter((part) => heading.test(part)).map((part) => NOTES.exec(part)?.[0].trimEnd())[0]
  const rest = parts.filter((part) => !heading.test(part)).join('')
  const newSection = notes && !NOTES.test(section) ? `${section.trimEnd()}\n\n${notes}` : section.trimEnd()
  return `${head}\n\n${newSection}\n${rest ? `\n${rest}` : ''}`
}
