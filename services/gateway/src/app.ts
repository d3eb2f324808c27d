import { randomUUID } from 'node:crypto'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NEXT_CURSOR_HEADER, REQUEST_ID_HEADER } from '@session-runtime/schemas'
import { errorEnvelope, frameworkErrors, validation } from '@session-runtime/service-kit'
import Fastify, { type FastifyRequest, type RouteOptions } from 'fastify'
import { type ApiKeyEntry, loadApiKeys, withoutApiKeyParam } from './api-keys.js'
import type { Config } from './config.js'
import { Errors } from './errors.js'
import auth from './plugins/auth.js'
import metrics from './plugins/metrics.js'
import docs from './routes/docs.js'
import health from './routes/health.js'
import playground from './routes/playground.js'
import proxyRoutes, { type Upstream } from './routes/proxy.js'

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
 * The API answers JSON and event streams only: its CSP allows nothing to load, run or frame. HSTS stays on
 * the host it was sent by (behind a TLS proxy; browsers ignore it over plain HTTP).
 */
const HELMET_OPTIONS = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: 'deny' as const },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
}

/**
 * Builds the gateway from a validated config. Never listens: server.ts does,
 * and tests use `inject()` on the same app.
 */
export async function buildApp(config: Config, options: GatewayOptions = {}) {
  let keys = options.keys
  if (!keys) {
    const loaded = loadApiKeys(config.API_KEYS, config.DATA_DIR)
    keys = loaded.keys
    if (loaded.createdKey) {
      const where = loaded.file ? `only its SHA-256 is stored in ${loaded.file}` : 'it is kept in memory only'
      ;(options.printCreatedKey ?? console.log)(
        `gateway: created API key for tenant "default" (shown once; ${where}): ${loaded.createdKey}`,
      )
    }
  }

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
  const origins = config.CORS_ORIGINS.split(',')
    .map((o) => o.trim())
    .filter(Boolean)
  if (origins.length > 0) {
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      exposedHeaders: [
        REQUEST_ID_HEADER,
        NEXT_CURSOR_HEADER,
        'retry-after',
        'x-ratelimit-limit',
        'x-ratelimit-remaining',
      ],
      maxAge: 600,
    })
  }

  // hardened headers on every answer; /docs and /playground/ replace the CSP with their own (routes/*.ts)
  await app.register(helmet, HELMET_OPTIONS)

  await app.register(validation)
  await app.register(errorEnvelope, {
    prefix: 'GATEWAY',
    errors: Errors,
    bodyLimit: config.GATEWAY_BODY_LIMIT_BYTES,
    // A downstream's state is named: 502 failed, 503 unavailable, 504 timed out.
    shown5xx: [502, 503, 504],
  })
  await app.register(metrics, { token: config.METRICS_TOKEN })
  await app.register(auth, { keys })

  const runService = { name: 'run-service', url: config.RUN_SERVICE_URL }
  const messageStore = { name: 'message-store', url: config.MESSAGE_STORE_URL }
  const upstreams: Upstream[] = [
    { ...runService, prefix: '/api/v1/run' },
    { ...runService, prefix: '/api/v1/flows' },
    { ...messageStore, prefix: '/api/v1/monitor' },
  ]
  // /docs (no API key): before the routes, whose schemas it documents
  await app.register(docs, { upstreams, internalToken: config.INTERNAL_TOKEN, timeoutMs: config.READY_TIMEOUT_MS })
  await app.register(health, { services: [runService, messageStore], timeoutMs: config.READY_TIMEOUT_MS })
  // /playground/ (no API key: the page asks for one and calls the public API with it)
  await app.register(playground)
  // `/internal/*` is deliberately not routed: it is the services' own API.
  await app.register(proxyRoutes, {
    upstreams,
    internalToken: config.INTERNAL_TOKEN,
    bodyLimit: config.GATEWAY_BODY_LIMIT_BYTES,
    rateLimit: { max: config.RATE_LIMIT_MAX, windowMs: config.RATE_LIMIT_WINDOW_MS },
  })

  return app
}
