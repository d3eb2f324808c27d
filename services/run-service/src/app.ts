import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { databaseErrorMeaning } from '@session-runtime/db'
import { errorEnvelope, internalAuth, openapi, serviceServerOptions, validation } from '@session-runtime/service-kit'
import Fastify, { type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { builtInComponents } from './engine/index.js'
import { Errors } from './errors.js'
import database, { databaseOptions } from './plugins/app/database.js'
import { errorOptions } from './plugins/app/error-handler.js'
import exampleFlows from './plugins/app/example-flows.js'
import metrics from './plugins/app/metrics.js'
import sessionRuns from './plugins/app/session-runs.js'
import unconfirmedMessages from './plugins/app/unconfirmed-messages.js'
import messageStore from './plugins/external/message-store.js'
import { createOpenAIModelPort } from './ports/openai-model.js'
import flows from './routes/flows/index.js'
import health from './routes/health/index.js'
import run from './routes/run/index.js'

/**
 * Builds the run-service from a validated config. Never listens: server.ts
 * does, and tests use `inject()` on the same app.
 */
export async function buildApp(config: Config, options: FastifyServerOptions = {}) {
  const shared = serviceServerOptions(Errors)
  // the component types a flow may use: parsed flows (imports, runs, the examples) are checked against them
  const registry = builtInComponents
  const app = Fastify({
    logger: { level: config.LOG_LEVEL },
    bodyLimit: config.FLOWS_BODY_LIMIT_BYTES,
    ...shared,
    // Langflow's routes end in a slash (`/api/v1/flows/`); clients call them with and without.
    routerOptions: { ...shared.routerOptions, ignoreTrailingSlash: true },
    ...options,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // app plugins, in order: validation and errors, then resources, then auth
  await app.register(validation)
  await app.register(errorEnvelope, {
    ...errorOptions(config.FLOWS_BODY_LIMIT_BYTES),
    databaseErrors: databaseErrorMeaning,
  })
  await app.register(metrics)
  await app.register(database, databaseOptions(config))
  await app.register(messageStore, {
    url: config.MESSAGE_STORE_URL,
    internalToken: config.INTERNAL_TOKEN,
    healthIntervalMs: config.MESSAGE_STORE_HEALTH_INTERVAL_MS,
  })
  await app.register(unconfirmedMessages, { intervalMs: config.UNCONFIRMED_SETTLE_INTERVAL_MS })
  await app.register(sessionRuns, {
    enabled: config.ONE_RUN_PER_SESSION,
    leaseMs: config.RUN_SESSION_LEASE_MS,
    heartbeatMs: config.RUN_SESSION_HEARTBEAT_MS,
    pollMs: config.RUN_SESSION_POLL_MS,
  })
  await app.register(internalAuth, { internalToken: config.INTERNAL_TOKEN, errors: Errors })
  await app.register(exampleFlows, { enabled: config.EXAMPLE_FLOWS, registry })
  // before the routes: the OpenAPI document is generated from the routes registered after it
  await app.register(openapi, {
    title: 'run-service',
    description: 'Flows and runs (spec §3, §6).',
    tags: [
      { prefix: '/api/v1/run/', name: 'Run', description: 'Run a flow (Langflow-compatible)' },
      { prefix: '/api/v1/flows/', name: 'Flows', description: 'Import and manage Langflow flows' },
      { prefix: '/api/v1/responses', name: 'OpenAI Responses API', description: 'Run a flow as an OpenAI model' },
    ],
  })

  // routes, one folder per resource
  await app.register(health)
  await app.register(flows, {
    bodyLimit: config.FLOWS_BODY_LIMIT_BYTES,
    limits: { maxNodes: config.FLOW_MAX_NODES, maxEdges: config.FLOW_MAX_EDGES, maxDepth: config.FLOW_MAX_DEPTH },
    registry,
  })
  const model = createOpenAIModelPort({ timeoutMs: config.OPENAI_TIMEOUT_MS })
  app.addHook('onClose', async () => model.close())
  await app.register(run, {
    bodyLimit: config.RUN_BODY_LIMIT_BYTES,
    inputMaxChars: config.RUN_INPUT_MAX_CHARS,
    tweaksMaxDepth: config.RUN_TWEAKS_MAX_DEPTH,
    tweaksMaxKeys: config.RUN_TWEAKS_MAX_KEYS,
    flowCacheSize: config.FLOW_CACHE_SIZE,
    registry,
    model,
    modelDefaults: {
      baseUrl: config.OPENAI_BASE_URL,
      apiKey: config.OPENAI_API_KEY || undefined,
      defaultModel: config.OPENAI_DEFAULT_MODEL || undefined,
    },
  })

  return app
}
