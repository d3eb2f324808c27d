import { fileURLToPath } from 'node:url'
import { type Database, type DatabasePluginOptions, databasePlugin, migrate } from '@session-runtime/db'
import type { Config } from '../../config.js'

const MIGRATIONS = fileURLToPath(new URL('../../../migrations/*.sql', import.meta.url))
/** Any constant: the advisory lock that makes concurrent start-ups migrate one at a time. */
const MIGRATION_LOCK = 7_862_001
/** Prefix of the prepared statements' names. */
export const STATEMENT_PREFIX = 'msgstore_'

/** Brings the message-store's tables to the newest version (migrations/*.sql); returns the files applied. */
export function migrateMessageStore(db: Database): Promise<string[]> {
  return migrate(db, { migrations: MIGRATIONS, lockId: MIGRATION_LOCK, schemaTable: 'schemaversion' })
}

/** The message-store's options for the `database` plugin (`app.db`, migrated before the app is ready). */
export const databaseOptions = (config: Config): DatabasePluginOptions => ({
  settings: config,
  name: 'message-store',
  statementPrefix: STATEMENT_PREFIX,
  migrate: migrateMessageStore,
})

export default databasePlugin
