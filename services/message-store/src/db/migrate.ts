import { fileURLToPath } from 'node:url'
import Postgrator from 'postgrator'
import type { Database } from './database.js'

const MIGRATIONS = fileURLToPath(new URL('../../migrations/*.sql', import.meta.url))
/** Any constant: the advisory lock that makes concurrent start-ups migrate one at a time. */
const MIGRATION_LOCK = 7_862_001

/**
 * Brings the schema to the newest version with Postgrator (versioned SQL files in
 * `migrations/`). Safe when several instances start at once: the whole run holds a
 * Postgres advisory lock, so the second instance waits and then finds nothing to do.
 */
export async function migrate(db: Database): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await tx.query(`CREATE SCHEMA IF NOT EXISTS "${db.schema.replaceAll('"', '""')}"`)
    const postgrator = new Postgrator({
      migrationPattern: MIGRATIONS,
      driver: 'pg',
      schemaTable: 'schemaversion',
      currentSchema: db.schema,
      execQuery: (query) => tx.query(query) as Promise<{ rows: Record<string, unknown>[] }>,
      execSqlScript: (script) => tx.exec(script),
    })
    const applied = await postgrator.migrate()
    return applied.map((m) => m.filename)
  })
}
