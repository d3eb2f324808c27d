// What the preload whole-stack/probe.ts prints on SIGWINCH, and how a bench reads it.

/** What starts the probe's line; the rest of the line is a ProbeReport as JSON. */
export const PROBE_PREFIX = '@@bench-probe '

export interface ProbeReport {
  pid: number
  /** Event-loop delay since the last report, milliseconds (the sampling interval taken off). */
  eld: { p50: number; p99: number; max: number; samples: number }
  /** process.memoryUsage() after the GC, bytes. */
  memory: NodeJS.MemoryUsage
  /** Whether a full GC ran before `memory` was read. */
  gc: boolean
}

/** The report on a line of a probed process's output, or undefined when the line is no report. */
export function probeReport(line: string): ProbeReport | undefined {
  if (!line.startsWith(PROBE_PREFIX)) return undefined
  try {
    return JSON.parse(line.slice(PROBE_PREFIX.length)) as ProbeReport
  } catch {
    return undefined
  }
}
