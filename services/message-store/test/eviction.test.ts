// The Redis cache under an evicting maxmemory-policy: a Redis of this test's own with a few MB of maxmemory,
// two instances on one Postgres, and a write+read load over more sessions than fit, so Redis evicts entries
// while writes append to them and reads fill them. Every read (through the other instance) of a session must
// list exactly the messages acknowledged for it so far, while other readers race to fill the same entries:
// 0 stale reads, under allkeys-lru and volatile-lru.
import { randomUUID } from 'node:crypto'
import { hasRedisServer, startRedisServer } from '@session-runtime/stack'
import t from 'tap'
import { backends, buildTestApp, dropSchema, history, messageInput, store, uniqueName } from './helpers/app.js'

const TENANT = 'tenant-a'
const WORKERS = 12
const SESSIONS_PER_WORKER = 8
const TURNS = 12
/** ~1.5 KB per message: 96 sessions × 12 turns × 2 messages ≈ 3.5 MB of history, over a 2 MB Redis. */
const PAD = 'x'.repeat(1500)

if (!backends.postgresUrl || !hasRedisServer()) {
  t.comment('left out: needs a real Postgres and a redis-server of its own')
} else {
  for (const policy of ['allkeys-lru', 'volatile-lru']) {
    t.test(`${policy}, maxmemory 2mb: evictions happen and no read is stale`, async (t) => {
      const server = await startRedisServer(t)
      t.match(await server.command('CONFIG SET maxmemory 2mb'), /OK/)
      t.match(await server.command(`CONFIG SET maxmemory-policy ${policy}`), /OK/)
      const schema = uniqueName('evict')
      const keyPrefix = `${uniqueName('evict')}:`
      t.teardown(() => dropSchema(schema))
      const env = { REDIS_URL: server.url, CACHE_MAX_MESSAGE_BYTES: '4096' }
      const a = await buildTestApp(t, { schema, keyPrefix, env })
      const b = await buildTestApp(t, { schema, keyPrefix, env })
      const flow_id = randomUUID()
      let reads = 0
      let stale = 0
      const worker = async (w: number) => {
        const expected = new Map<string, string[]>()
        for (let turn = 0; turn < TURNS; turn++) {
          for (let s = 0; s < SESSIONS_PER_WORKER; s++) {
            const session_id = `w${w}-s${s}`
            const list = expected.get(session_id) ?? []
            const question = `${session_id} q${turn}`
            const answer = `${session_id} a${turn} ${PAD}`
            // Alternate the writing instance; always read through the other one.
            const [writer, reader] = turn % 2 === 0 ? [a, b] : [b, a]
            await store(writer, TENANT, [
              messageInput({ flow_id, session_id, text: question }),
              messageInput({ flow_id, session_id, sender: 'Machine', sender_name: 'AI', text: answer }),
            ])
            list.push(question, answer)
            expected.set(session_id, list)
            const got = (await history(reader, TENANT, { flow_id, session_id, limit: 1000 })).map((m) => m.text)
            reads++
            if (JSON.stringify(got) !== JSON.stringify(list)) {
              stale++
              t.fail(`${session_id} turn ${turn}: stale read`, { got: got.length, expected: list.length })
            }
          }
        }
      }
      // Unchecked readers of random sessions besides: their fills race with the writes (the cache-aside race).
      let done = false
      const racer = async (i: number) => {
        while (!done) {
          const session_id = `w${Math.floor(Math.random() * WORKERS)}-s${Math.floor(Math.random() * SESSIONS_PER_WORKER)}`
          await history(i % 2 === 0 ? a : b, TENANT, { flow_id, session_id, limit: 1000 })
        }
      }
      const racers = Array.from({ length: 6 }, (_, i) => racer(i))
      await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
      done = true
      await Promise.all(racers)
      const info = await server.command('INFO stats')
      const evicted = Number(/evicted_keys:(\d+)/.exec(info)?.[1] ?? 0)
      const hits = a.repository.stats().hits + b.repository.stats().hits
      t.comment(`${policy}: ${reads} reads, ${stale} stale, ${evicted} keys evicted, ${hits} served from the cache`)
      t.ok(evicted > 0, `Redis evicted entries under the load (${evicted})`)
      t.ok(hits > reads / 10, `the cache still served reads (${hits} of ${reads})`)
      t.equal(stale, 0, `0 stale of ${reads} reads`)
    })
  }
}
