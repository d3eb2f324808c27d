import pg from 'pg'
import type { Database, Transaction } from './database.js'

export interface PgDatabaseOptions {
  connectionString: string
  /** Schema to use (created if missing); lets tests and tenants of a server share one database. */
  schema: string
  max: number
  statementTimeoutMs: number
  connectTimeoutMs: number
}

/** A `pg` pool behind the Database interface. */
export async function createPgDatabase(opts: PgDatabaseOptions): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    statement_timeout: opts.statementTimeoutMs,
    options: `-c search_path=${quoteIdent(opts.schema)}`,
  })
  // An idle client that loses its connection emits 'error' on the pool; without a
  // listener that would crash the process. The next query reconnects.
  pool.on('error', () => {})
  return {
    kind: 'postgres',
    schema: opts.schema,
    query: (sql, params) => pool.query(sql, params as unknown[]) as never,
    async transaction(fn) {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        const tx: Transaction = {
          query: (sql, params) => client.query(sql, params as unknown[]) as never,
          exec: async (sql) => {
            await client.query(sql)
          },
        }
        const result = await fn(tx)
        await client.query('COMMIT')
        return result
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
    close: () => pool.end(),
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
