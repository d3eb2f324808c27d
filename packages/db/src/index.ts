export { BatchedCalls, type BatchedCallsOptions, BatchQueue, type BatchQueueOptions } from './batch-queue.js'
export {
  type Database,
  isUnavailableError,
  type Queryable,
  RETRYABLE_SQLSTATES,
  type Transaction,
} from './database.js'
export { type DatabasePluginOptions, databasePlugin } from './database-plugin.js'
export { type DatabaseErrorMeaning, databaseErrorMeaning } from './errors.js'
export { type MigrateOptions, migrate } from './migrate.js'
export { openDatabase } from './open-database.js'
export { createPgDatabase, type PgDatabaseOptions, quoteIdent } from './pg-database.js'
export { createPgliteDatabase } from './pglite-database.js'
export { DatabaseSettings } from './settings.js'
