import { randomUUID } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { REQUEST_ID_HEADER } from '@session-runtime/schemas'
import { errorEnvelope, frameworkErrors, validation } from '@session-runtime/service-kit'
import Fastify, { type FastifyRequest, type RouteOptions } from 'fastify'
import { type Config, instanceUrls } from './config.js'
import { type ApiKeyEntry, withoutApiKeyParam } from './domain/api-keys.js'
import { OPENAI_RESPONSE_STREAM } from './domain/event-stream-watch.js'
import type { Upstream } from './domain/upstreams.js'
import { Errors } from './errors.js'
import accessLog, { accessLogController } from './plugins/app/access-log.js'
import auth from './plugins/app/auth.js'
import { errorOptions } from './plugins/app/error-handler.js'
import metrics from './plugins/app/metrics.js'
import cors from './plugins/external/cors.js'
import helmet from './plugins/external/helmet.js'
import swagger from './plugins/external/swagger.js'
import upstreamPools from './plugins/external/upstream-pools.js'
import docs from './routes/docs/index.js'
import health from './routes/health/index.js'
import playground from './routes/playground/index.js'
import proxy from './routes/proxy/index.js'

export interface GatewayOptions {
  /** Where the logs go (tests); default stdout. */
  logStream?: { write: (line: string) => void }
  /** Accepted keys; default: from API_KEYS, else DATA_DIR/gateway-keys.json, else a created `default` key. */
  keys?: ApiKeyEntry[]
  /** Shows a key created at this start, once; default: stdout. */
  printCreatedKey?: (line: string) => void
  /** Sees every route as it is registered (tests list the routes to check that each one asks for a key). */
  onRoute?: (route: RouteOptions) => void
}

/** A secret in a header or in the query never reaches the logs. */
const logRedaction = {
  paths: [
    'req.headers["x-api-key"]',
    'req.headers["x-internal-token"]',
    'req.query["x-api-key"]',
    'headers["x-api-key"]',
    'headers["x-internal-token"]',
  ],
  censor: '[redacted]',
}

/**
 * Builds the gateway from a validated config. Never listens: server.ts does,
 * and tests use `inject()` on the same app.
 */
export async function buildApp(config: Config, options: GatewayOptions = {}) {
  const app = Fastify({
    logger: {
      level: config.LOG_LEVEL,
      redact: logRedaction,
      serializers: {
        req: (request: FastifyRequest) => ({
          method: request.method,
          url: withoutApiKeyParam(request.url),
          host: request.host,
          remoteAddress: request.ip,
        }),
      },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    // one line per client request, at info (plugins/app/access-log); Fastify's own lines at debug
    logController: accessLogController(),
    routerOptions: { maxParamLength: 65_536, ignoreTrailingSlash: true },
    frameworkErrors: frameworkErrors(Errors),
    // the error envelope answers requests that arrive while closing (a 503 in the envelope)
    return503OnClosing: false,
    // The request ID is made here, at the edge; a caller's x-request-id is not trusted.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
  }).withTypeProvider<TypeBoxTypeProvider>()
  if (options.onRoute) app.addHook('onRoute', options.onRoute)

  app.addHook('onSend', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id)
  })

  // external plugins first: CORS answers browsers' preflight requests before any key is asked for
  await app.register(cors, { origins: config.CORS_ORIGINS })
  await app.register(helmet)

  // app plugins, in order: the log line's flow and session, validation and errors, then metrics (its hooks see
  // every request), then API keys
  await app.register(accessLog)
  await app.register(validation)
  await app.register(errorEnvelope, errorOptions(config.GATEWAY_BODY_LIMIT_BYTES))
  await app.register(metrics, { token: config.METRICS_TOKEN })
  await app.register(auth, {
    keys: options.keys,
    apiKeys: config.API_KEYS,
    dataDir: config.DATA_DIR,
    printCreatedKey: options.printCreatedKey,
  })

  const runService = { name: 'run-service', urls: instanceUrls(config.RUN_SERVICE_URL) }
  const messageStore = { name: 'message-store', urls: instanceUrls(config.MESSAGE_STORE_URL) }
  // keep-alive connections to every instance of each service, spread over those in rotation
  await app.register(upstreamPools, {
    services: [runService, messageStore],
    healthIntervalMs: config.UPSTREAM_HEALTH_INTERVAL_MS,
    healthTimeoutMs: config.READY_TIMEOUT_MS,
    connections: config.UPSTREAM_CONNECTIONS,
  })
  // each public prefix with the body limit its service applies there (413 at the edge above it)
  const limit = (serviceLimit: number) => Math.min(serviceLimit, config.GATEWAY_BODY_LIMIT_BYTES)
  const upstreams: Upstream[] = [
    { ...runService, prefix: '/api/v1/run', bodyLimit: limit(config.RUN_BODY_LIMIT_BYTES) },
    { ...runService, prefix: '/api/v1/flows', bodyLimit: limit(config.FLOWS_BODY_LIMIT_BYTES) },
    // Langflow's OpenAI-compatible endpoint: runs, streamed as OpenAI's response events
    {
      ...runService,
      prefix: '/api/v1/responses',
      bodyLimit: limit(config.RUN_BODY_LIMIT_BYTES),
      streamFormat: OPENAI_RESPONSE_STREAM,
    },
    { ...messageStore, prefix: '/api/v1/monitor', bodyLimit: limit(config.BODY_LIMIT_BYTES) },
  ]
  // before the routes: the gateway's own OpenAPI document is generated from the routes registered after it
  await app.register(swagger, { proxiedPrefixes: upstreams.map((upstream) => upstream.prefix) })

  // routes, one folder each; /docs, /health, /ready and /playground/ need no API key
  await app.register(docs, { upstreams, internalToken: config.INTERNAL_TOKEN, timeoutMs: config.READY_TIMEOUT_MS })
  await app.register(health, { services: [runService, messageStore], timeoutMs: config.READY_TIMEOUT_MS })
  await app.register(playground)
  // the public API; `/internal/*` is deliberately not routed: it is the services' own API.
  await app.register(proxy, {
    upstreams,
    internalToken: config.INTERNAL_TOKEN,
    rateLimit: {
      max: config.RATE_LIMIT_MAX,
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      redis: {
        url: config.REDIS_URL,
        clusterNodes: config.REDIS_CLUSTER_NODES,
        prefix: config.RATE_LIMIT_REDIS_PREFIX,
        timeoutMs: config.RATE_LIMIT_REDIS_TIMEOUT_MS,
      },
    },
  })

  return app
}
