import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { buildApp as buildMessageStore } from '@session-runtime/message-store/app'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import { INTERNAL_TOKEN_HEADER, type Message, TENANT_HEADER } from '@session-runtime/schemas'
import { dropTestSchemas, testStorageEnv } from '@session-runtime/stack'
import type { FastifyRequest, FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'

/** Real Postgres when the test command found it (scripts/test.mjs sets it), else embedded PGlite. */
export const backends = { postgresUrl: process.env.TEST_DATABASE_URL || undefined }
export const storageKind = backends.postgresUrl ? 'postgres' : 'pglite'

export const INTERNAL_TOKEN = 'test-internal-token-0123456789'

/** A name unique to this test file and app, for a Postgres schema. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
}

export type MessageStore = Awaited<ReturnType<typeof buildMessageStore>> & { url: string }

/** A session's stored messages (or, without `sessionId`, the flow's), oldest first, as the message-store's monitor API lists them. */
export async function sessionMessages(
  store: MessageStore,
  tenant: string,
  flowId: string,
  sessionId?: string,
): Promise<Message[]> {
  const query = new URLSearchParams({ flow_id: flowId, limit: '1000' })
  if (sessionId !== undefined) query.set('session_id', sessionId)
  const res = await store.inject({
    method: 'GET',
    url: `/api/v1/monitor/messages?${query}`,
    headers: internalHeaders(tenant),
  })
  if (res.statusCode !== 200) throw new Error(`monitor: ${res.statusCode} ${res.body}`)
  return res.json() as Message[]
}

/**
 * The real message-store, listening on 127.0.0.1 with a free port, on its own
 * Postgres schema (or in-memory PGlite) and in-process cache; closed and dropped when the test ends.
 * `onRequest`: a hook of the test's (e.g. to hold a write).
 */
export async function startMessageStore(
  t: Test,
  opts: { onRequest?: (request: FastifyRequest) => Promise<void> } = {},
): Promise<MessageStore> {
  const schema = uniqueName('ms')
  const store = await buildMessageStore(
    loadMessageStoreConfig(testStorageEnv(schema, INTERNAL_TOKEN) as NodeJS.ProcessEnv),
  )
  if (opts.onRequest) store.addHook('onRequest', opts.onRequest)
  await store.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await store.close()
    await dropSchema(schema)
  })
  const { port } = store.server.address() as AddressInfo
  return Object.assign(store, { url: `http://127.0.0.1:${port}` })
}

export interface TestAppOptions {
  /** Environment overrides (strings, as in process.env). */
  env?: Record<string, string | undefined>
  /** The message-store to talk to; default: an unused address (routes that need it fail). */
  messageStoreUrl?: string
  /** Fastify server options, e.g. a logger writing to a test stream. */
  server?: FastifyServerOptions
  /**
   * The Postgres schema of another test app, for a second instance sharing its database (real Postgres only:
   * PGlite is embedded in one app); left for that app to drop.
   */
  schema?: string
}

export type TestApp = Awaited<ReturnType<typeof buildApp>> & { schema: string }

/**
 * Builds the real run-service on its own Postgres schema (or its own in-memory
 * PGlite), so test files can run in parallel; the schema is dropped when the test ends.
 */
export async function buildTestApp(t: Test, opts: TestAppOptions = {}): Promise<TestApp> {
  const schema = opts.schema ?? uniqueName('rs')
  const env: Record<string, string | undefined> = {
    ...testStorageEnv(schema, INTERNAL_TOKEN),
    MESSAGE_STORE_URL: opts.messageStoreUrl ?? 'http://127.0.0.1:1',
    ...opts.env,
  }
  const config: Config = loadConfig(env as NodeJS.ProcessEnv)
  const app = await buildApp(config, opts.server)
  await app.ready()
  t.teardown(async () => {
    await app.close()
    if (!opts.schema) await dropSchema(schema)
  })
  return Object.assign(app, { schema })
}

export const dropSchema = (schema: string) => dropTestSchemas(schema)

/** Headers the gateway sends. */
export function internalHeaders(tenant = 'tenant-a'): Record<string, string> {
  return { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN, [TENANT_HEADER]: tenant }
}
