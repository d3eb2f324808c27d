import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Errors } from '../../errors.js'

export interface GatewayRateLimitOptions {
  /** Requests per API key per window; 0: no limit (nothing is registered). */
  max: number
  windowMs: number
}

/**
 * A request limit per API key (`request.apiKeyId`, set by the key check), never per IP. Its hooks belong to
 * each route registered after it in the scope that registers it: the proxied routes register it after their
 * key check, so a request is counted only once its key is known.
 */
async function gatewayRateLimit(app: FastifyInstance, { max, windowMs }: GatewayRateLimitOptions) {
  if (max <= 0) return
  await app.register(rateLimit, {
    max,
    timeWindow: windowMs,
    keyGenerator: (request) => request.apiKeyId,
    errorResponseBuilder: () => new Errors.RateLimited(max, Math.ceil(windowMs / 1000)),
  })
}

export default fp(gatewayRateLimit, { name: 'gateway-rate-limit', dependencies: ['gateway-auth'] })
