/** One JSON line of a service's log (pino), as a test reads it. */
export interface LogLine {
  level: number
  msg: string
  reqId?: string
  [field: string]: unknown
}

/** pino's numeric levels. */
export const LOG_LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const

/** A destination for a service's logger (`logger: { stream }`, the gateway's `logStream`): each line parsed into `lines`. */
export function logInto(lines: LogLine[]): { write: (line: string) => void } {
  return { write: (line) => lines.push(JSON.parse(line) as LogLine) }
}
