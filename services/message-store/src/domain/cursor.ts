/**
 * Opaque keyset cursors (base64url JSON). A cursor names the last row a page
 * returned by its sort values, never by its ID, so it stays valid after that row
 * is deleted.
 */
export class InvalidCursorError extends Error {}

export function encodeCursor(values: Record<string, string | number | null>): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url')
}

/**
 * Decodes a cursor and checks that it has exactly `fields`, each a string (or null
 * where `nullable`), and that `bound` fields equal the given values (a cursor made
 * for one ordering can't be used with another).
 */
export function decodeCursor<K extends string>(
  cursor: string,
  fields: readonly K[],
  bound: Partial<Record<K, string>> = {},
  nullable: readonly K[] = [],
): Record<K, string> {
  let parsed: unknown
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url')
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new InvalidCursorError('Malformed cursor')
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidCursorError('Malformed cursor')
  const record = parsed as Record<string, unknown>
  if (Object.keys(record).length !== fields.length) throw new InvalidCursorError('Malformed cursor')
  for (const field of fields) {
    const value = record[field]
    // Postgres text can't hold NUL: such a value could only fail in the query.
    const ok = (typeof value === 'string' && !value.includes('\u0000')) || (value === null && nullable.includes(field))
    if (!ok) throw new InvalidCursorError('Malformed cursor')
  }
  for (const [field, expected] of Object.entries(bound)) {
    if (record[field] !== expected) {
      throw new InvalidCursorError('Cursor belongs to a different ordering; start again without it')
    }
  }
  return record as Record<K, string>
}

const CURSOR_TIMESTAMP = /^(\d{4})-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/

/**
 * A timestamp as cursors carry it (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, a real date).
 * Date.parse alone is not enough: it accepts strings Postgres refuses ("1", year 0).
 */
export function isCursorTimestamp(value: string): boolean {
  const match = CURSOR_TIMESTAMP.exec(value)
  if (!match || match[1] === '0000') return false
  const seconds = value.slice(0, 19)
  const date = new Date(`${seconds}Z`)
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 19) === seconds
}

const BIGINT_MAX = 9_223_372_036_854_775_807n

/** A non-negative Postgres bigint in decimal. */
export function isCursorBigint(value: string): boolean {
  return /^\d{1,19}$/.test(value) && BigInt(value) <= BIGINT_MAX
}

export function isCursorUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)
}
