import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, probeBackends } from '@session-runtime/stack'

/** The Postgres and Redis of a whole-stack run, and whether each answers. */
export interface FoundBackends {
  databaseUrl: string
  redisUrl: string
  hasPostgres: boolean
  hasRedis: boolean
}

/** `<prefix>_DATABASE_URL` and `<prefix>_REDIS_URL` of the environment (else the local defaults), probed. */
export async function findBackends(prefix: 'BENCH' | 'SOAK'): Promise<FoundBackends> {
  const databaseUrl = process.env[`${prefix}_DATABASE_URL`] ?? DEFAULT_DATABASE_URL
  const redisUrl = process.env[`${prefix}_REDIS_URL`] ?? DEFAULT_REDIS_URL
  const [hasPostgres, hasRedis] = await probeBackends(databaseUrl, redisUrl)
  return { databaseUrl, redisUrl, hasPostgres, hasRedis }
}
