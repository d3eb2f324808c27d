import { once } from 'node:events'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Cluster, Redis } from 'ioredis'
import { Errors } from '../../errors.js'

/** Where the counters live when several gateways share them. */
export interface RateLimitRedis {
  /** redis://… of one Redis server; ignored when `clusterNodes` is set. */
  url: string
  /** `host:port,host:port`: some nodes of a Redis Cluster. */
  clusterNodes: string
  /** Prefix of the counters' keys. */
  prefix: string
  /** A command slower than this fails (the request is let through uncounted). */
  timeoutMs: number
}

export interface GatewayRateLimitOptions {
  /** Requests per API key per window; 0: no limit (nothing is registered). */
  max: number
  windowMs: number
  /** Counters shared through Redis; absent (or no url nor nodes): counted in this process. */
  redis?: RateLimitRedis
}

function connect({ url, clusterNodes, timeoutMs }: RateLimitRedis): Redis | Cluster | undefined {
  // Fail fast while Redis is away (no offline queue): the limiter then lets the request through.
  const options = { enableOfflineQueue: false, commandTimeout: timeoutMs, maxRetriesPerRequest: 1 }
  const nodes = clusterNodes
    .split(',')
    .map((node) => node.trim())
    .filter(Boolean)
  if (nodes.length > 0) {
    return new Cluster(
      nodes.map((node) => {
        const at = node.lastIndexOf(':')
        return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
      }),
      { enableOfflineQueue: false, redisOptions: options },
    )
  }
  return url ? new Redis(url, options) : undefined
}

/**
 * A request limit per API key (`request.apiKeyId`, set by the key check), never per IP. Its hooks belong to
 * each route registered after it in the scope that registers it: the proxied routes register it after their
 * key check, so a request is counted only once its key is known.
 *
 * With Redis (REDIS_URL or REDIS_CLUSTER_NODES), every gateway counts in the same keys, so the limit holds
 * across all of them. If Redis fails (down, too slow), the request is let through uncounted (`skipOnError`)
 * and the failure logged: a Redis outage lifts the limit for its duration, it never fails requests.
 */
async function gatewayRateLimit(app: FastifyInstance, { max, windowMs, redis: shared }: GatewayRateLimitOptions) {
  if (max <= 0) return
  const redis = shared ? connect(shared) : undefined
  if (redis && shared) {
    let healthy = true
    redis.on('error', (error: Error) => {
      if (healthy) app.log.warn({ err: error }, 'rate-limit Redis failed: requests pass uncounted until it is back')
      healthy = false
    })
    redis.on('ready', () => {
      if (!healthy) app.log.info('rate-limit Redis is back: requests are counted again')
      healthy = true
    })
    app.addHook('onClose', async () => {
      redis.disconnect()
    })
    // counted from the first request when Redis is there; a start without it is no failure
    await Promise.race([
      once(redis, 'ready'),
      once(redis, 'error'),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]).catch(() => {})
  }
  await app.register(rateLimit, {
    max,
    timeWindow: windowMs,
    keyGenerator: (request) => request.apiKeyId,
    errorResponseBuilder: () => new Errors.RateLimited(max, Math.ceil(windowMs / 1000)),
    ...(redis && shared ? { redis, nameSpace: shared.prefix, skipOnError: true } : {}),
  })
}

export default fp(gatewayRateLimit, { name: 'gateway-rate-limit', dependencies: ['gateway-auth'] })
