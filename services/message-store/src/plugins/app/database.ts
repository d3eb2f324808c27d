import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import type { Database } from '../../db/database.js'
import { migrate } from '../../db/migrate.js'
import { createPgDatabase } from '../../db/pg-database.js'
import { createPgliteDatabase } from '../../db/pglite-database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

/** Postgres (DATABASE_URL) or embedded PGlite; migrated before the app is ready. */
async function database(app: FastifyInstance, { config }: { config: Config }) {
  const db = config.DATABASE_URL
    ? await createPgDatabase({
        connectionString: config.DATABASE_URL,
        schema: config.DATABASE_SCHEMA,
        max: config.DATABASE_POOL_MAX,
        statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
        connectTimeoutMs: 5000,
      })
    : await createPgliteDatabase(
        config.DATA_DIR === 'memory://' ? undefined : join(resolve(config.DATA_DIR), 'message-store'),
      )
  app.addHook('onClose', () => db.close())
  const applied = await migrate(db)
  app.log.info({ database: db.kind, schema: db.schema, migrations: applied.length }, 'database ready')
  app.decorate('db', db)
}

export default fp(database, { name: 'database' })
