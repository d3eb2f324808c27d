// What the tests, benches and the soak need of Postgres and Redis: which ones the test command found, probes,
// clients, the clean-up of their own schemas and keys, server versions.
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import pg from 'pg'

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres'
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

export interface Backends {
  postgresUrl: string | undefined
  redisUrl: string | undefined
}

/** Real Postgres and Redis when the test command found them (scripts/test.mjs sets these), else none. */
export const testBackends = (): Backends => ({
  postgresUrl: process.env.TEST_DATABASE_URL || undefined,
  redisUrl: process.env.TEST_REDIS_URL || undefined,
})

/**
 * The settings of a service app a test builds in process: its own `schema` of the Postgres the test command
 * found (else in-memory PGlite), a small pool, no logs.
 */
export function testStorageEnv(schema: string, internalToken: string): Record<string, string | undefined> {
  return {
    LOG_LEVEL: 'silent',
    INTERNAL_TOKEN: internalToken,
    DATA_DIR: 'memory://',
    DATABASE_URL: testBackends().postgresUrl,
    DATABASE_SCHEMA: schema,
    DATABASE_POOL_MAX: '4',
  }
}

/** Drops schemas of the Postgres the test command found (with PGlite there is nothing to drop). */
export async function dropTestSchemas(...schemas: string[]): Promise<void> {
  const { postgresUrl } = testBackends()
  if (postgresUrl) await dropSchemas(postgresUrl, schemas)
}

/** Sends `probe` and resolves true when the server answers with something matching `expect` (as scripts/test.mjs). */
function reachable(url: string, probe: Buffer | string, expect: RegExp): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write(probe))
    socket.on('data', (data) => done(expect.test(data.toString('latin1'))))
  })
}

/** An SSLRequest packet: any Postgres answers it with one byte, S or N. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])

/** Whether something at this URL answers PING with PONG. */
export const redisAnswers = (redisUrl: string) => reachable(redisUrl, 'PING\r\n', /^\+PONG/)

/** Whether a Postgres and a Redis answer at these URLs. */
export async function probeBackends(databaseUrl: string, redisUrl: string): Promise<[boolean, boolean]> {
  return Promise.all([reachable(databaseUrl, SSL_REQUEST, /^[SN]/), redisAnswers(redisUrl)])
}

export async function withPg<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A client that fails at once when Redis is not there (no reconnecting). */
function redisClient(redisUrl: string): Redis {
  return new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: () => null,
  })
}

/** A quoted SQL identifier (as quoteIdent of @session-runtime/db). */
const ident = (name: string) => `"${name.replaceAll('"', '""')}"`

export async function dropSchemas(databaseUrl: string, schemas: readonly string[]): Promise<void> {
  await withPg(databaseUrl, async (client) => {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`)
  })
}

export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = redisClient(redisUrl)
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

export async function postgresVersion(databaseUrl: string): Promise<string | undefined> {
  return withPg(
    databaseUrl,
    async (c) => (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v,
  )
}

export async function redisVersion(redisUrl: string): Promise<string> {
  const redis = redisClient(redisUrl)
  try {
    await redis.connect()
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?'
  } finally {
    redis.disconnect()
  }
}
