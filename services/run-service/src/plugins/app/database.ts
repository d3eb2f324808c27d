import { fileURLToPath } from 'node:url'
import { type Database, migrate, openDatabase } from '@session-runtime/db'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

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

/** Postgres (DATABASE_URL) or embedded PGlite; migrated before the app is ready. */
async function database(app: FastifyInstance, { config }: { config: Config }) {
  const db = await openDatabase(config, { name: 'run-service', statementPrefix: STATEMENT_PREFIX })
  app.addHook('onClose', () => db.close())
  const applied = await migrateRunService(db)
  app.log.info({ database: db.kind, schema: db.schema, migrations: applied.length }, 'database ready')
  app.decorate('db', db)
}

export default fp(database, { name: 'database' })
