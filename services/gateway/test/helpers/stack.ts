import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { buildApp as buildMessageStore } from '@session-runtime/message-store/app'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import { buildApp as buildRunService } from '@session-runtime/run-service/app'
import { loadConfig as loadRunServiceConfig } from '@session-runtime/run-service/config'
import Fastify from 'fastify'
import pg from 'pg'
import type { Test } from 'tap'
import { buildApp, type GatewayOptions } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

/** Real Postgres when the test command found it (scripts/test.mjs sets it), else embedded PGlite. */
const postgresUrl = process.env.TEST_DATABASE_URL || undefined

export const INTERNAL_TOKEN = 'test-internal-token-0123456789'
export const KEY_A = 'key-a-0123456789'
export const KEY_B = 'key-b-0123456789'
export const API_KEYS = `tenant-a=${KEY_A},tenant-b=${KEY_B}`

const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
const urlOf = (app: { server: { address(): unknown } }) =>
  `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

async function dropSchema(schema: string) {
  if (!postgresUrl) return
  const client = new pg.Client({ connectionString: postgresUrl })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

function storageEnv(schema: string) {
  return {
    LOG_LEVEL: 'silent',
    INTERNAL_TOKEN,
    DATA_DIR: 'memory://',
    DATABASE_URL: postgresUrl,
    DATABASE_SCHEMA: schema,
    DATABASE_POOL_MAX: '4',
  }
}

/**
 * A fake OpenAI-compatible model that streams its reply only once the test
 * calls `release()`, so a test can watch what passes the gateway meanwhile.
 */
export async function startGatedModel(t: Test) {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  let release = () => {}
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  app.post('/v1/chat/completions', async (request, reply) => {
    const body = request.body as { model: string; stream?: boolean }
    await gate
    const base = { id: 'chatcmpl-fake', created: 1, model: body.model }
    if (!body.stream) {
      return {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'hello there' }, finish_reason: 'stop' }],
      }
    }
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: Record<string, string>, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    reply.raw.write(chunk({ role: 'assistant', content: '' }))
    reply.raw.write(chunk({ content: 'hello ' }))
    reply.raw.write(chunk({ content: 'there' }))
    reply.raw.write(chunk({}, 'stop'))
    reply.raw.end('data: [DONE]\n\n')
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { url: `${urlOf(app)}/v1`, release }
}

export interface StackOptions {
  modelUrl?: string
  gateway?: GatewayOptions
  /** Overrides of the gateway's environment. */
  env?: Record<string, string>
  /** Overrides of the run-service's environment (e.g. smaller limits). */
  runServiceEnv?: Record<string, string>
  /** Overrides of the message-store's environment. */
  storeEnv?: Record<string, string>
  /** The services' logs, at this level, to these streams; default: silent. */
  serviceLogs?: { level: string; runService: LogStream; messageStore: LogStream }
}

export interface LogStream {
  write: (line: string) => void
}

/**
 * The real message-store and run-service on 127.0.0.1 (free ports, own schemas
 * or in-memory PGlite), and the gateway in front of them (not listening: inject()).
 */
export async function startStack(t: Test, opts: StackOptions = {}) {
  const msSchema = uniqueName('gw_ms')
  const logs = opts.serviceLogs
  const logLevel = logs ? { LOG_LEVEL: logs.level } : {}
  const logged = (stream: LogStream | undefined) => (logs && stream ? { logger: { level: logs.level, stream } } : {})
  const store = await buildMessageStore(
    loadMessageStoreConfig({ ...storageEnv(msSchema), ...logLevel, ...opts.storeEnv } as NodeJS.ProcessEnv),
    logged(logs?.messageStore),
  )
  /** What the message-store received: the method and URL of every request. */
  const storeSeen: { method: string; url: string }[] = []
  store.addHook('onRequest', async (request) => {
    storeSeen.push({ method: request.method, url: request.url })
  })
  await store.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await store.close()
    await dropSchema(msSchema)
  })

  const rsSchema = uniqueName('gw_rs')
  const runService = await buildRunService(
    loadRunServiceConfig({
      ...storageEnv(rsSchema),
      ...logLevel,
      MESSAGE_STORE_URL: urlOf(store),
      OPENAI_BASE_URL: opts.modelUrl ?? 'http://127.0.0.1:1/v1',
      OPENAI_API_KEY: 'sk-test',
      OPENAI_DEFAULT_MODEL: 'fake-model',
      ...opts.runServiceEnv,
    } as NodeJS.ProcessEnv),
    logged(logs?.runService),
  )
  /** What the run-service received: the headers of every request. */
  const seen: Record<string, string | string[] | undefined>[] = []
  runService.addHook('onRequest', async (request) => {
    seen.push({ ...request.headers, url: request.url })
  })
  await runService.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await runService.close()
    await dropSchema(rsSchema)
  })

  const gateway = await buildApp(
    loadConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN,
      API_KEYS,
      RUN_SERVICE_URL: urlOf(runService),
      MESSAGE_STORE_URL: urlOf(store),
      ...opts.env,
    } as NodeJS.ProcessEnv),
    opts.gateway,
  )
  await gateway.ready()
  t.teardown(() => gateway.close())
  return { gateway, store, runService, seen, storeSeen }
}
