import { type Static, Type } from '@sinclair/typebox'

/**
 * The database settings of a service with a database, as a TypeBox fragment to spread into its config schema
 * (`Type.Object({ ...ServiceSettings, ...DatabaseSettings, ... })`); documented in .env.example.
 */
export const DatabaseSettings = {
  /** Postgres server; without it the service runs on embedded PGlite under DATA_DIR/<service>. */
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  /** Postgres schema holding the tables (created if missing). */
  DATABASE_SCHEMA: Type.String({ default: 'public', pattern: '^[a-z_][a-z0-9_]{0,62}$' }),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, default: 10 }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
}

const DatabaseSettingsSchema = Type.Object(DatabaseSettings)

/** What openDatabase reads of a service's config: the settings above and where PGlite keeps its files. */
export type DatabaseSettings = Static<typeof DatabaseSettingsSchema> & { DATA_DIR: string }
