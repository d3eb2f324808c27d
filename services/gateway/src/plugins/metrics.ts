import { Counter, metrics } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Errors } from '../errors.js'

/**
 * `/metrics` (route latency by route pattern, so proxied traffic by upstream
 * route; Node's metrics; see service-kit) and `auth_failures_total{reason}`:
 * `missing_key` (401) or `invalid_key` (403). Registered before the routes, so
 * its hooks see every request.
 */
async function gatewayMetrics(app: FastifyInstance) {
  await app.register(metrics, { service: 'gateway' })
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

export default fp(gatewayMetrics, { name: 'gateway-metrics' })
