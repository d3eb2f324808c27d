/**
 * The small SQL surface the services need, implemented by a `pg` pool
 * (DATABASE_URL) and by embedded PGlite (no DATABASE_URL). Same SQL on both.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>
}

export interface Transaction extends Queryable {
  /** Runs a script of several statements (migrations). */
  exec(sql: string): Promise<void>
}

export interface Database extends Queryable {
  /** `postgres` for a server, `pglite` for the embedded engine. */
  readonly kind: 'postgres' | 'pglite'
  /** The Postgres schema holding the tables. */
  readonly schema: string
  /** Runs `fn` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>
  /**
   * Calls `onPayload` with the payload of every NOTIFY on `channel` (Postgres: on a connection of its own,
   * opened again after a failure, so a notification may be missed meanwhile: poll as well). Resolves the
   * function that stops listening. Optional: a Database without it offers no notifications.
   */
  listen?(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

/** Postgres error codes worth a retry of the whole transaction. */
export const RETRYABLE_SQLSTATES = new Set(['40001', '40P01'])

/** Postgres error codes that mean the database cannot be reached or is going away. */
export function isUnavailableError(err: unknown): boolean {
  const e = err as { code?: string; message?: string }
  if (!e || typeof e !== 'object') return false
  if (typeof e.code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN'].includes(e.code)) return true
    // 08: connection exception, 53: insufficient resources, 57P: operator intervention (shutdown)
    if (/^(08|53|57P)/.test(e.code)) return true
  }
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|database is closed|PGlite is closed/i.test(
    e.message ?? '',
  )
}
