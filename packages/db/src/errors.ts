import { isUnavailableError } from './database.js'

/**
 * What a database error means to the caller of a service: the database cannot be reached
 * (answer 503, try again), or the caller's data cannot be stored (answer 422). Services pass
 * `databaseErrorMeaning` to service-kit's error envelope (option `databaseErrors`).
 */
export type DatabaseErrorMeaning = { kind: 'unavailable' } | { kind: 'unstorable'; detail: string }

/** Tells which database errors are not this service's failure; undefined for every other error. */
export function databaseErrorMeaning(err: unknown): DatabaseErrorMeaning | undefined {
  if (isUnavailableError(err)) return { kind: 'unavailable' }
  const e = err as { code?: unknown; message?: unknown; detail?: unknown }
  if (!e || typeof e !== 'object') return undefined
  // Postgres cannot store NUL in text or JSON: the caller's data, not our failure.
  if (e.code === '22P05' || e.code === '22021') {
    return { kind: 'unstorable', detail: 'body contains a character that cannot be stored (NUL, \\u0000)' }
  }
  // …nor a lone UTF-16 surrogate (e.g. "\ud800") in JSON: 22P02, "Unicode low surrogate must follow a high surrogate"
  if (e.code === '22P02' && /surrogate/i.test(`${e.detail} ${e.message}`)) {
    return { kind: 'unstorable', detail: 'body contains a character that cannot be stored (a lone UTF-16 surrogate)' }
  }
  return undefined
}
