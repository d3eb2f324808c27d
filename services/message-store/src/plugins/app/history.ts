import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { HistoryBackend } from '../../cache/history-backend.js'
import { createMemoryBackend } from '../../cache/memory-backend.js'
import { createRedisBackend } from '../../cache/redis-backend.js'
import { type Config, clusterNatMap } from '../../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The hot-history cache, or undefined when disabled. Only the repository reads and updates it. */
    historyCache: HistoryBackend | undefined
  }
}

/** Names the cache in the start-up log line (no credentials). */
function describe(config: Config): string {
  if (!config.CACHE_ENABLED) return 'disabled'
  if (config.REDIS_CLUSTER_NODES) {
    const nat = config.REDIS_CLUSTER_NAT_MAP ? `, NAT map ${config.REDIS_CLUSTER_NAT_MAP}` : ''
    return `Redis Cluster (seeds ${config.REDIS_CLUSTER_NODES}${nat})`
  }
  if (config.REDIS_URL) {
    const url = new URL(config.REDIS_URL)
    return `Redis at ${url.host}`
  }
  return 'in-process LRU of this instance'
}

/**
 * The hot-history cache: Redis with REDIS_URL, a Redis Cluster with REDIS_CLUSTER_NODES, else in-process;
 * closed with the app. Any of them is safe with any number of instances: reads check versions in Postgres.
 */
async function history(app: FastifyInstance, { config }: { config: Config }) {
  const ttlMs = config.CACHE_TTL_SECONDS * 1000
  const onError = (err: Error) => app.log.warn({ err }, 'history cache unavailable; serving from the database')
  let cache: HistoryBackend | undefined
  if (config.CACHE_ENABLED) {
    cache =
      config.REDIS_URL || config.REDIS_CLUSTER_NODES
        ? createRedisBackend({
            url: config.REDIS_URL,
            clusterNodes: config.REDIS_CLUSTER_NODES?.split(','),
            natMap: clusterNatMap(config.REDIS_CLUSTER_NAT_MAP),
            keyPrefix: config.REDIS_KEY_PREFIX,
            commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
            maxEntries: config.CACHE_MAX_MESSAGES,
            ttlMs,
            onError,
          })
        : createMemoryBackend({ maxEntries: config.CACHE_MAX_MESSAGES, ttlMs, maxBytes: config.CACHE_MAX_BYTES })
    const opened = cache
    app.addHook('onClose', () => opened.close())
  }
  app.log.info({ cache: cache?.kind ?? 'disabled' }, `history cache: ${describe(config)}`)
  app.decorate('historyCache', cache)
}

export default fp(history, { name: 'history', dependencies: ['database'] })
