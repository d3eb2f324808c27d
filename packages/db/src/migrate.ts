import Postgrator from 'postgrator'
import type { Database } from './database.js'

export interface MigrateOptions {
  /** Glob of the versioned SQL files, e.g. `/srv/app/migrations/*.sql` (`001.do.name.sql`). */
  migrations: string
  /** Any constant, one per service: the advisory lock that makes concurrent start-ups migrate one at a time. */
  lockId: number
  /**
   * Table recording the applied versions, in the database's schema. Services that share a
   * schema need one each, or one service's version 1 would count as the other's. Default `schemaversion`.
   */
  schemaTable?: string
}

/**
 * Brings the schema to the newest version with Postgrator (versioned SQL files).
 * Safe when several instances start at once: the whole run holds a Postgres
 * advisory lock, so the second instance waits and then finds nothing to do.
 * Returns the paths of the files applied by this call.
 */
export async function migrate(db: Database, opts: MigrateOptions): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [opts.lockId])
    await tx.query(`CREATE SCHEMA IF NOT EXISTS "${db.schema.replaceAll('"', '""')}"`)
    const postgrator = new Postgrator({
      migrationPattern: opts.migrations,
      driver: 'pg',
      schemaTable: opts.schemaTable ?? 'schemaversion',
      currentSchema: db.schema,
      execQuery: (query) => tx.query(query) as Promise<{ rows: Record<string, unknown>[] }>,
      execSqlScript: (script) => tx.exec(script),
    })
    const applied = await postgrator.migrate()
    return applied.map((m) => m.filename)
  })
}
