// The Redis cache under an evicting maxmemory-policy: a Redis of this test's own with a few MB of maxmemory,
// two instances on one Postgres, and a write+read load over more sessions than fit, so Redis evicts entries
// while writes append to them and reads fill them. Every read (through the other instance) of a session must
// list exactly the messages acknowledged for it so far, while other readers race to fill the same entries:
// 0 stale reads, under allkeys-lru and volatile-lru.
import { hasRedisServer, startRedisServer } from '@session-runtime/stack'
import t from 'tap'
import { backends } from './helpers/app.js'
import { checkedLoad, pair } from './helpers/instances.js'

if (!backends.postgresUrl || !hasRedisServer()) {
  t.comment('left out: needs a real Postgres and a redis-server of its own')
} else {
  for (const policy of ['allkeys-lru', 'volatile-lru']) {
    t.test(`${policy}, maxmemory 2mb: evictions happen and no read is stale`, async (t) => {
      const server = await startRedisServer(t)
      t.match(await server.command('CONFIG SET maxmemory 2mb'), /OK/)
      t.match(await server.command(`CONFIG SET maxmemory-policy ${policy}`), /OK/)
      const env = { REDIS_URL: server.url, CACHE_MAX_MESSAGE_BYTES: '4096' }
      const p = await pair(t, env, env)
      // ~1.5 KB per answer: 96 sessions × 12 turns ≈ 3.5 MB of history, over a 2 MB Redis.
      const load = await checkedLoad(t, p, {
        workers: 12,
        sessionsPerWorker: 8,
        turns: 12,
        pad: 'x'.repeat(1500),
        racers: 6,
      })
      const info = await server.command('INFO stats')
      const evicted = Number(/evicted_keys:(\d+)/.exec(info)?.[1] ?? 0)
      const hits = p.a.repository.stats().hits + p.b.repository.stats().hits
      t.comment(`${policy}: ${load.reads} reads, ${load.stale} stale, ${evicted} keys evicted, ${hits} cache hits`)
      t.same(load.failures, [], 'no request failed')
      t.ok(evicted > 0, `Redis evicted entries under the load (${evicted})`)
      t.ok(hits > load.reads / 10, `the cache still served reads (${hits} hits, ${load.reads} checked reads)`)
      t.equal(load.stale, 0, `0 stale of ${load.reads} reads`)
    })
  }
}
