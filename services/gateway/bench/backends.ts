// What the gateway's bench and soak both need of Postgres, Redis and the machine: probes, clients,
// the clean-up of their own schemas and keys, server versions, free ports.
import { createRequire } from 'node:module'
import { connect, createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

/** Sends `probe` and resolves true when the server answers with something matching `expect`. */
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

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])

/** Whether a Postgres and a Redis answer at these URLs. */
export async function probeBackends(databaseUrl: string, redisUrl: string): Promise<[boolean, boolean]> {
  return Promise.all([reachable(databaseUrl, SSL_REQUEST, /^[SN]/), reachable(redisUrl, 'PING\r\n', /^\+PONG/)])
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

interface RedisLike {
  connect(): Promise<void>
  scan(cursor: string, ...args: (string | number)[]): Promise<[string, string[]]>
  del(...keys: string[]): Promise<number>
  info(section: string): Promise<string>
  disconnect(): void
}

/** ioredis is the message-store's dependency, not the gateway's: borrowed from there. */
function redisClient(redisUrl: string): RedisLike {
  const require = createRequire(fileURLToPath(new URL('../../message-store/package.json', import.meta.url)))
  const { Redis } = require('ioredis') as { Redis: new (url: string, opts: object) => RedisLike }
  return new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
}

export async function dropSchemas(databaseUrl: string, schemas: readonly string[]): Promise<void> {
  await withPg(databaseUrl, async (client) => {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
