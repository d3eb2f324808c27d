import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import type { Database } from './database.js'

/** A lone UTF-16 surrogate (half of a pair), which UTF-8 cannot encode. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/**
 * Parameters as node-postgres sends them: a lone surrogate in a string (or in an array's strings) becomes
 * U+FFFD. PGlite would miscount the bytes of such a string: "invalid byte sequence" or "malformed array literal".
 */
function wellFormed(params: unknown[] | undefined): unknown[] | undefined {
  const fix = (value: unknown): unknown =>
    typeof value === 'string' ? value.replace(LONE_SURROGATE, '\ufffd') : Array.isArray(value) ? value.map(fix) : value
  return params?.map(fix)
}

/**
 * Embedded Postgres (PGlite, Postgres compiled to WebAssembly): the zero-install
 * default when no DATABASE_URL is given. `dataDir` undefined keeps data in memory.
 */
export async function createPgliteDatabase(dataDir: string | undefined): Promise<Database> {
  if (dataDir) await mkdir(dataDir, { recursive: true })
  // pg_trgm: the message-store's search index (its migration 005 creates the extension)
  const db = await PGlite.create(dataDir, { extensions: { pg_trgm } })
  // PGlite runs one query at a time; transactions hold it exclusively.
  return {
    kind: 'pglite',
    schema: 'public',
    query: (sql, params) => db.query(sql, wellFormed(params)) as never,
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          query: (sql, params) => tx.query(sql, wellFormed(params)) as never,
          exec: async (sql) => {
            await tx.exec(sql)
          },
        }),
      ),
    listen: async (channel, onPayload) => {
      const unlisten = await db.listen(channel, onPayload)
      return async () => {
        if (!db.closed) await unlisten()
      }
    },
    close: async () => {
      if (!db.closed) await db.close()
    },
  }
}
