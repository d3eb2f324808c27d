import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { buildApp as buildMessageStore } from '@session-runtime/message-store/app'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import { buildApp as buildRunService } from '@session-runtime/run-service/app'
import { loadConfig as loadRunServiceConfig } from '@session-runtime/run-service/config'
import { dropTestSchemas, type FakeModel, startFakeModel, testStorageEnv } from '@session-runtime/stack'
import type { Test } from 'tap'
import { buildApp, type GatewayOptions } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

export const INTERNAL_TOKEN = 'test-internal-token-0123456789'
export const KEY_A = 'key-a-0123456789'
export const KEY_B = 'key-b-0123456789'
export const API_KEYS = `tenant-a=${KEY_A},tenant-b=${KEY_B}`

const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
const urlOf = (app: { server: { address(): unknown } }) =>
  `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

/** Real Postgres when the test command found it (scripts/test.mjs sets it), else embedded PGlite. */
const storageEnv = (schema: string) => testStorageEnv(schema, INTERNAL_TOKEN)

/**
 * A fake OpenAI-compatible model that holds its reply (a streamed one after its first word) until the test
 * calls `release()`, so a test can watch what passes the gateway meanwhile.
 */
export async function startGatedModel(t: Test): Promise<FakeModel> {
  const model = await startFakeModel(t, { reply: () => 'hello there' })
  model.hold()
  return model
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
    await dropTestSchemas(msSchema)
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
    await dropTestSchemas(rsSchema)
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
