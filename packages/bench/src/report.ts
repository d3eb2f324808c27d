// The pieces of a bench's report and docs/benchmarks.md section that do not depend on its scenarios.
import os from 'node:os'

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

export const pct = (n: number) => `${fmt(n * 100)}%`

/** `## <date> — <what> (<time> UTC)`, of the time the bench started. */
export function sectionHeading(startedAt: Date, what: string): string {
  const date = startedAt.toISOString().slice(0, 10)
  const time = startedAt.toISOString().slice(11, 16)
  return `## ${date} — ${what} (${time} UTC)`
}

/** The section's machine and software lines. */
export function machineLines(backends: { postgres: string; redis: string }): string[] {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU'
  return [
    `- machine: ${os.availableParallelism()} cores (nproc), ${cpu}, ${fmt(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
    `- node ${process.version}; ${backends.postgres}; ${backends.redis}`,
  ]
}

/** One finding per row with a verdict: met or **missed**, and why. */
export function verdictFindings(rows: { scenario: string; verdict?: { pass: boolean; detail: string } }[]): string[] {
  return rows
    .filter((r) => r.verdict)
    .map((r) => `- ${r.scenario}: ${r.verdict?.pass ? 'met' : '**missed**'} (${r.verdict?.detail}).`)
}

/** A section's lines joined, with no two blank lines in a row. */
export function sectionText(lines: string[]): string {
  return lines.filter((line, i, all) => line !== '' || all[i - 1] !== '').join('\n')
}

/** The end of a section: the results table, the CPU table under its caption, and the findings. */
export function resultLines(table: string[], cpuCaption: string, cpuTable: string[], findings: string[]): string[] {
  return ['', ...table, '', cpuCaption, '', ...cpuTable, '', '### What it shows', '', ...findings, '']
}
