import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import type { Database } from './database.js'

/**
 * Embedded Postgres (PGlite, Postgres compiled to WebAssembly): the zero-install
 * default when no DATABASE_URL is given. `dataDir` undefined keeps data in memory.
 */
export async function createPgliteDatabase(dataDir: string | undefined): Promise<Database> {
  if (dataDir) await mkdir(dataDir, { recursive: true })
  const db = await PGlite.create(dataDir)
  // PGlite runs one query at a time; transactions hold it exclusively.
  return {
    kind: 'pglite',
    schema: 'public',
    query: (sql, params) => db.query(sql, params) as never,
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          query: (sql, params) => tx.query(sql, params) as never,
          exec: async (sql) => {
            await tx.exec(sql)
          },
        }),
      ),
    close: async () => {
      if (!db.closed) await db.close()
    },
  }
}
