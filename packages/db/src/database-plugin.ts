import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Database } from './database.js'
import { openDatabase } from './open-database.js'
import type { DatabaseSettings } from './settings.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

export interface DatabasePluginOptions {
  /** The service's validated config (DATABASE_* and DATA_DIR). */
  settings: DatabaseSettings
  /** The service's name: PGlite keeps its files under DATA_DIR/<name>. */
  name: string
  /** Prefix of the service's prepared statements' names. */
  statementPrefix: string
  /** Brings the service's tables to the newest version; returns the files applied. */
  migrate: (db: Database) => Promise<string[]>
}

/**
 * The named plugin `database`: Postgres (DATABASE_URL) or embedded PGlite as `app.db`,
 * migrated before the app is ready, closed when the app closes.
 */
async function database(app: FastifyInstance, options: DatabasePluginOptions) {
  const db = await openDatabase(options.settings, { name: options.name, statementPrefix: options.statementPrefix })
  app.addHook('onClose', () => db.close())
  const applied = await options.migrate(db)
  app.log.info({ database: db.kind, schema: db.schema, migrations: applied.length }, 'database ready')
  app.decorate('db', db)
}

export const databasePlugin = fp(database, { name: 'database', fastify: '5.x' })
