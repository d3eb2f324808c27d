import { join, resolve } from 'node:path'
import type { Database } from './database.js'
import { createPgDatabase } from './pg-database.js'
import { createPgliteDatabase } from './pglite-database.js'
import type { DatabaseSettings } from './settings.js'

/**
 * Postgres when DATABASE_URL is set, else embedded PGlite with its files under
 * DATA_DIR/<service> (`memory://`: in memory only).
 */
export function openDatabase(
  settings: DatabaseSettings,
  service: { name: string; statementPrefix: string },
): Promise<Database> {
  if (settings.DATABASE_URL) {
    return createPgDatabase({
      connectionString: settings.DATABASE_URL,
      schema: settings.DATABASE_SCHEMA,
      max: settings.DATABASE_POOL_MAX,
      statementTimeoutMs: settings.DATABASE_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: 5000,
      statementPrefix: service.statementPrefix,
    })
  }
  return createPgliteDatabase(
    settings.DATA_DIR === 'memory://' ? undefined : join(resolve(settings.DATA_DIR), service.name),
  )
}
