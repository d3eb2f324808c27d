import pg from 'pg'
import type { Database, Transaction } from './database.js'

export interface PgDatabaseOptions {
  connectionString: string
  /** Schema to use (created if missing); lets tests and tenants of a server share one database. */
  schema: string
  max: number
  statementTimeoutMs: number
  connectTimeoutMs: number
  /**
   * Prefix of the names of prepared statements (e.g. `msgstore_`), so that the
   * statements of two services are told apart in `pg_prepared_statements` and logs.
   */
  statementPrefix: string
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
  const statementName = statementNamer(opts.statementPrefix)
  return {
    kind: 'postgres',
    schema: opts.schema,
    query: (sql, params) => pool.query({ name: statementName(sql), text: sql, values: params as unknown[] }) as never,
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
    listen: (channel, onPayload) => listenOn(opts, channel, onPayload),
    close: () => pool.end(),
  }
}

/** How long a lost listening connection waits before it connects again. */
const RELISTEN_DELAY_MS = 500

/**
 * LISTEN on a connection of its own (a pooled one would be handed to other queries), connected again
 * `RELISTEN_DELAY_MS` after it failed or could not connect (the first one included), until stopped.
 */
async function listenOn(
  opts: PgDatabaseOptions,
  channel: string,
  onPayload: (payload: string) => void,
): Promise<() => Promise<void>> {
  let stopped = false
  let client: pg.Client | undefined
  let retry: NodeJS.Timeout | undefined
  const connect = async (): Promise<void> => {
    const next = new pg.Client({
      connectionString: opts.connectionString,
      connectionTimeoutMillis: opts.connectTimeoutMs,
    })
    const again = () => {
      next.removeAllListeners()
      next.on('error', () => {})
      next.end().catch(() => {})
      if (client === next) client = undefined
      if (!stopped && retry === undefined) {
        retry = setTimeout(() => {
          retry = undefined
          connect().catch(() => {})
        }, RELISTEN_DELAY_MS)
        retry.unref()
      }
    }
    next.on('error', again)
    next.on('end', again)
    next.on('notification', (message) => {
      if (message.channel === channel) onPayload(message.payload ?? '')
    })
    try {
      await next.connect()
      await next.query(`LISTEN ${quoteIdent(channel)}`)
    } catch (error) {
      again()
      throw error
    }
    if (stopped) await next.end().catch(() => {})
    else client = next
  }
  // a first connection that fails is tried again like a lost one
  await connect().catch(() => {})
  return async () => {
    stopped = true
    clearTimeout(retry)
    const last = client
    client = undefined
    if (last) {
      last.removeAllListeners()
      last.on('error', () => {})
      await last.end().catch(() => {})
    }
  }
}

/** Most distinct statements prepared by name; any further ones are parsed and planned on every call. */
const MAX_NAMED_STATEMENTS = 1000

/**
 * A name for `sql`, so that each connection parses it once and Postgres can reuse
 * its plan, instead of parsing and planning it on every call: planning the write
 * statement costs more than running it (docs/benchmarks.md). One name per SQL text
 * for the pool (`pg` requires a name to mean one text); bounded, since some SQL texts are built
 * from the query's filters.
 */
function statementNamer(prefix: string) {
  const statementNames = new Map<string, string>()
  return (sql: string): string | undefined => {
    let name = statementNames.get(sql)
    if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
      name = `${prefix}${statementNames.size}`
      statementNames.set(sql, name)
    }
    return name
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
