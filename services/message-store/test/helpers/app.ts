import { randomBytes, randomUUID } from 'node:crypto'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import { deleteRedisKeys, dropTestSchemas, testBackends, testStorageEnv } from '@session-runtime/stack'
import type { FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'

/**
 * Real backends when the test command found them (scripts/test.mjs sets these),
 * else embedded PGlite and the in-process cache.
 */
export const backends = testBackends()
export const storageKind = backends.postgresUrl ? 'postgres' : 'pglite'
export const cacheKind = backends.redisUrl ? 'redis' : 'memory'

export const INTERNAL_TOKEN = 'test-internal-token-0123456789'

/** A name unique to this test file and app, for a Postgres schema or a Redis key prefix. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
}

export interface TestAppOptions {
  /** Environment overrides (strings, as in process.env). */
  env?: Record<string, string | undefined>
  /** `default`: Redis if reachable, else in-process; `memory`; `none` (cache disabled). */
  cache?: 'default' | 'memory' | 'none'
  /** Reuse this schema (two apps on one database). */
  schema?: string
  /** Reuse this Redis key prefix (two apps on one cache). */
  keyPrefix?: string
  /** Fastify server options, e.g. a logger writing to a test stream. */
  server?: FastifyServerOptions
}

export type TestApp = Awaited<ReturnType<typeof buildApp>> & { schema: string; keyPrefix: string }

/**
 * Builds the real app on its own Postgres schema (or its own in-memory PGlite)
 * and its own Redis key prefix, so test files can run in parallel; everything is
 * dropped when the test ends.
 */
export async function buildTestApp(t: Test, opts: TestAppOptions = {}): Promise<TestApp> {
  const schema = opts.schema ?? uniqueName('t')
  const keyPrefix = opts.keyPrefix ?? `${uniqueName('test')}:`
  const cache = opts.cache ?? 'default'
  const env: Record<string, string | undefined> = {
    ...testStorageEnv(schema, INTERNAL_TOKEN),
    REDIS_URL: cache === 'default' ? backends.redisUrl : undefined,
    REDIS_KEY_PREFIX: keyPrefix,
    CACHE_ENABLED: cache === 'none' ? 'false' : 'true',
    ...opts.env,
  }
  const config: Config = loadConfig(env as NodeJS.ProcessEnv)
  const app = await buildApp(config, opts.server)
  await app.ready()
  if (config.REDIS_URL && app.historyCache) await waitFor(() => app.historyCache?.status() === 'up')
  t.teardown(async () => {
    await app.close()
    if (!opts.schema) await dropSchema(schema)
    if (config.REDIS_URL) await deleteKeys(config.REDIS_URL, keyPrefix)
  })
  return Object.assign(app, { schema, keyPrefix })
}

export const dropSchema = (schema: string) => dropTestSchemas(schema)

export async function deleteKeys(url: string, prefix: string) {
  // Redis already gone (a test stopped it): nothing to clean.
  await deleteRedisKeys(url, prefix).catch(() => {})
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Headers the gateway and the run-service send. */
export function internalHeaders(tenant = 'tenant-a'): Record<string, string> {
  return { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN, [TENANT_HEADER]: tenant }
}

/** A message as the run-service would send it. */
export function messageInput(overrides: Partial<Record<string, unknown>> & { flow_id: string; session_id: string }) {
  return {
    id: randomUUID(),
    sender: 'User',
    sender_name: 'User',
    text: 'hello',
    ...overrides,
  }
}

/** Stores messages through the internal batch API and returns them. */
export async function store(app: TestApp, tenant: string, messages: ReturnType<typeof messageInput>[]) {
  const res = await app.inject({
    method: 'POST',
    url: '/internal/messages/batch',
    headers: internalHeaders(tenant),
    payload: { messages },
  })
  if (res.statusCode !== 201) throw new Error(`store failed: ${res.statusCode} ${res.body}`)
  return res.json() as Array<
    Record<string, unknown> & { id: string; session_id: string; text: string; timestamp: string }
  >
}

/** Reads a history through the internal API. */
export async function history(
  app: TestApp,
  tenant: string,
  query: Record<string, string | number>,
): Promise<Array<{ id: string; text: string; session_id: string; sender: string; sender_name: string }>> {
  const res = await app.inject({
    method: 'GET',
    url: '/internal/history',
    headers: internalHeaders(tenant),
    query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])),
  })
  if (res.statusCode !== 200) throw new Error(`history failed: ${res.statusCode} ${res.body}`)
  return res.json()
}
