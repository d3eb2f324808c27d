import { createHash, timingSafeEqual } from 'node:crypto'
import { Counter, metrics } from '@session-runtime/service-kit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Errors } from '../../errors.js'

/**
 * `/metrics` (route latency by route pattern, so proxied traffic by upstream
 * route; Node's metrics; see service-kit) and `auth_failures_total{reason}`:
 * `missing_key` (401) or `invalid_key` (403). Registered before the routes, so
 * its hooks see every request. With a `token`, /metrics needs `authorization: Bearer <token>`
 * (compared in constant time; 401 otherwise): the gateway's port is public, unlike the services'.
 */
async function gatewayMetrics(app: FastifyInstance, opts: GatewayMetricsOptions) {
  const token = opts.token ?? ''
  await app.register(metrics, { service: 'gateway', ...(token ? { onRequest: requireBearer(token) } : {}) })
  const authFailures = new Counter({
    name: 'auth_failures_total',
    help: 'Requests refused for their API key, by reason',
    labelNames: ['reason'] as const,
    registers: [app.metricsRegistry],
  })
  for (const reason of ['missing_key', 'invalid_key']) authFailures.inc({ reason }, 0)
  app.addHook('onError', async (_request, _reply, error) => {
    if (error instanceof Errors.MissingApiKey) authFailures.inc({ reason: 'missing_key' })
    else if (error instanceof Errors.InvalidApiKey) authFailures.inc({ reason: 'invalid_key' })
  })
}

export interface GatewayMetricsOptions {
  /** METRICS_TOKEN; empty or absent: /metrics is open. */
  token?: string
}

const digest = (value: string) => createHash('sha256').update(value).digest()

/** onRequest hook: `authorization: Bearer <token>`, else 401. */
function requireBearer(token: string) {
  const expected = digest(`Bearer ${token}`)
  return async (request: FastifyRequest) => {
    const presented = request.headers.authorization
    if (typeof presented !== 'string' || !timingSafeEqual(digest(presented), expected)) {
      throw new Errors.MetricsUnauthorized()
    }
  }
}

export default fp(gatewayMetrics, { name: 'gateway-metrics' })
