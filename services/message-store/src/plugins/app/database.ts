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
/** Any constant: the advisory lock that makes concurrent start-ups migrate one at a time. */
const MIGRATION_LOCK = 7_862_001
/** Prefix of the prepared statements' names. */
export const STATEMENT_PREFIX = 'msgstore_'

/** Brings the message-store's tables to the newest version (migrations/*.sql); returns the files applied. */
export function migrateMessageStore(db: Database): Promise<string[]> {
  return migrate(db, { migrations: MIGRATIONS, lockId: MIGRATION_LOCK, schemaTable: 'schemaversion' })
}

/** Postgres (DATABASE_URL) or embedded PGlite; migrated before the app is ready. */
async function database(app: FastifyInstance, { config }: { config: Config }) {
  const db = await openDatabase(config, { name: 'message-store', statementPrefix: STATEMENT_PREFIX })
  app.addHook('onClose', () => db.close())
  const applied = await migrateMessageStore(db)
  app.log.info({ database: db.kind, schema: db.schema, migrations: applied.length }, 'database ready')
  app.decorate('db', db)
}

export default fp(database, { name: 'database' })
