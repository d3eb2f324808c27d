import { fileURLToPath } from 'node:url'
import { type Database, type DatabasePluginOptions, databasePlugin, migrate } from '@session-runtime/db'
import type { Config } from '../../config.js'

const MIGRATIONS = fileURLToPath(new URL('../../../migrations/*.sql', import.meta.url))
/** Any constant, not the message-store's: the advisory lock that makes concurrent start-ups migrate one at a time. */
const MIGRATION_LOCK = 7_861_001
/** Prefix of the prepared statements' names. */
export const STATEMENT_PREFIX = 'runsvc_'
/**
 * The run-service's own version table: with one DATABASE_URL and DATABASE_SCHEMA for
 * both services, the message-store's `schemaversion` would count as this one's.
 */
export const SCHEMA_TABLE = 'run_service_schemaversion'

/** Brings the run-service's tables to the newest version (migrations/*.sql); returns the files applied. */
export function migrateRunService(db: Database): Promise<string[]> {
  return migrate(db, { migrations: MIGRATIONS, lockId: MIGRATION_LOCK, schemaTable: SCHEMA_TABLE })
}

/** The run-service's options for the `database` plugin (`app.db`, migrated before the app is ready). */
export const databaseOptions = (config: Config): DatabasePluginOptions => ({
  settings: config,
  name: 'run-service',
  statementPrefix: STATEMENT_PREFIX,
  migrate: migrateRunService,
})

export default databasePlugin
