import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { HistoryBackend } from '../../cache/history-backend.js'
import { createMemoryBackend } from '../../cache/memory-backend.js'
import { createRedisBackend } from '../../cache/redis-backend.js'
import type { Config } from '../../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The hot-history cache, or undefined when disabled. Only the repository reads and updates it. */
    historyCache: HistoryBackend | undefined
  }
}

/** The hot-history cache: Redis with REDIS_URL, else in-process; closed with the app. */
async function history(app: FastifyInstance, { config }: { config: Config }) {
  const ttlMs = config.CACHE_TTL_SECONDS * 1000
  const onError = (err: Error) => app.log.warn({ err }, 'history cache unavailable; serving from the database')
  let cache: HistoryBackend | undefined
  if (config.CACHE_ENABLED) {
    cache = config.REDIS_URL
      ? createRedisBackend({
          url: config.REDIS_URL,
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
  app.log.info({ cache: cache?.kind ?? 'disabled' }, 'history cache ready')
  app.decorate('historyCache', cache)
}

export default fp(history, { name: 'history', dependencies: ['database'] })
