import { Counter, Gauge, metrics } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * `/metrics` (route latency, Node's metrics; see service-kit) and the store's own,
 * read at scrape time from the repository's counts:
 * `messages_stored_total`, `history_cache_hits_total`, `history_cache_misses_total`
 * and `history_cache_hit_ratio` (hits / reads since start; 0 before the first read).
 */
async function messageStoreMetrics(app: FastifyInstance) {
  await app.register(metrics, { service: 'message-store' })
  const registers = [app.metricsRegistry]
  // The repository is decorated later (repository plugin); it exists by the first scrape.
  const counts = () => app.repository?.stats() ?? { stored: 0, hits: 0, misses: 0 }
  const reading = (name: string, help: string, read: (c: ReturnType<typeof counts>) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset()
        this.inc(read(counts()))
      },
    })
  reading('messages_stored_total', 'Messages persisted (an idempotent repeat is not stored again)', (c) => c.stored)
  reading('history_cache_hits_total', 'History reads answered from the cache', (c) => c.hits)
  reading('history_cache_misses_total', 'History reads that went to the database', (c) => c.misses)
  new Gauge({
    name: 'history_cache_hit_ratio',
    help: 'Share of history reads answered from the cache since start (0 before the first read)',
    registers,
    collect() {
      const { hits, misses } = counts()
      this.set(hits + misses === 0 ? 0 : hits / (hits + misses))
    },
  })
}

export default fp(messageStoreMetrics, { name: 'message-store-metrics' })
