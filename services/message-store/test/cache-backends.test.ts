// The history cache primitives (get / fill / append / invalidate) as one
// contract, run against the in-process LRU and, when the test command found one,
// against real Redis. The rules under test are the ones history-backend.ts documents.
import { startRedisServer } from '@session-runtime/stack'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { CachedHistory, HistoryBackend } from '../src/cache/history-backend.js'
import { createMemoryBackend } from '../src/cache/memory-backend.js'
import { createRedisBackend } from '../src/cache/redis-backend.js'
import { backends, deleteKeys, uniqueName, waitFor } from './helpers/app.js'

interface Options {
  maxEntries: number
  ttlMs: number
  /** Memory backend only. */
  maxBytes: number
}

interface Made {
  backend: HistoryBackend
  /** Redis only: the key prefix of this backend. */
  prefix?: string
}

interface Subject {
  kind: 'memory' | 'redis'
  make(t: Test, opts?: Partial<Options>): Promise<Made>
}

const DEFAULTS: Options = { maxEntries: 100, ttlMs: 60_000, maxBytes: 1024 * 1024 }

/** A fixed-width sort key, like message_sort_key(ts, seq). */
const sk = (n: number) => String(n).padStart(36, '0')
/** A message JSON string. */
const msg = (n: number, pad = 0) => JSON.stringify({ n, text: 'x'.repeat(pad) })
const msgs = (...ns: number[]) => ns.map((n) => msg(n))

/** A cached history with its entries as strings (the Redis backend may hand out Buffers). */
const summary = (h: CachedHistory | null) =>
  h ? { version: h.version, flag: h.flag, entries: h.entries.map(String) } : null

const memory: Subject = {
  kind: 'memory',
  async make(t, opts = {}) {
    const o = { ...DEFAULTS, ...opts }
    const backend = createMemoryBackend(o)
    t.teardown(() => backend.close())
    return { backend }
  },
}

const redisSubject = (url: string): Subject => ({
  kind: 'redis',
  async make(t, opts = {}) {
    const o = { ...DEFAULTS, ...opts }
    const prefix = `${uniqueName('cb')}:`
    const errors: Error[] = []
    const backend = createRedisBackend({
      url,
      keyPrefix: prefix,
      commandTimeoutMs: 2000,
      maxEntries: o.maxEntries,
      ttlMs: o.ttlMs,
      onError: (err) => errors.push(err),
    })
    t.teardown(async () => {
      await backend.close()
      await deleteKeys(url, prefix)
    })
    await waitFor(() => backend.status() === 'up')
    return { backend, prefix }
  },
})

async function withRaw<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await r.connect()
  try {
    return await fn(r)
  } finally {
    r.disconnect()
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function contract(t: Test, s: Subject) {
  t.test('a miss, a fill, then hits with the newest entries', async (t) => {
    const { backend } = await s.make(t)
    t.equal(backend.status(), 'up')
    t.equal(await backend.get('k', 10), null, 'nothing cached yet')
    await backend.fill('k', 5, 'c', sk(3), msgs(1, 2, 3))
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1, 2, 3) })
    t.same(summary(await backend.get('k', 2))?.entries, msgs(2, 3), 'count keeps the newest')
    t.same(summary(await backend.get('k', 1))?.entries, msgs(3))
    await backend.fill('empty', 2, 'c', '', [])
    t.same(summary(await backend.get('empty', 10)), { version: 2, flag: 'c', entries: [] }, 'an empty history')
  })

  t.test('a fill never replaces a newer state', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(2), msgs(1, 2))
    await backend.fill('k', 4, 'c', sk(1), msgs(1))
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1, 2) }, 'older fill refused')
    await backend.fill('k', 6, 'c', sk(3), msgs(1, 2, 3))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'c', entries: msgs(1, 2, 3) }, 'newer fill kept')
    await backend.fill('k', 6, 'c', sk(1), msgs(1))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'c', entries: msgs(1) }, 'the same version fills')
  })

  t.test('a write whose previous version is cached appends to it', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(3), msgs(1, 2, 3))
    await backend.append('k', 5, 6, sk(4), sk(5), msgs(4, 5))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'c', entries: msgs(1, 2, 3, 4, 5) })
    // A write of only error messages: the version moves, the entries do not.
    await backend.append('k', 6, 7, '', '', [])
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 'c', entries: msgs(1, 2, 3, 4, 5) })
    // The last key moved to sk(5) with the first append: a message that does not sort after it is refused.
    await backend.append('k', 7, 8, sk(5), sk(6), msgs(6))
    t.equal(await backend.get('k', 10), null, 'dropped, not appended')
  })

  t.test('appends arriving in the wrong order drop the entry, never misorder it', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(1), msgs(1))
    // Write A (5 -> 6, message 2) committed before write B (6 -> 7, message 3); B's append arrives first.
    await backend.append('k', 6, 7, sk(3), sk(3), msgs(3))
    t.equal(await backend.get('k', 10), null, 'the entry at 5 is dropped')
    await backend.append('k', 5, 6, sk(2), sk(2), msgs(2))
    t.equal(await backend.get('k', 10), null, 'the late append finds nothing to append to')
    await backend.fill('k', 7, 'c', sk(3), msgs(1, 2, 3))
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 'c', entries: msgs(1, 2, 3) })
    await backend.append('k', 5, 6, sk(2), sk(2), msgs(2))
    t.same(summary(await backend.get('k', 10))?.version, 7, 'an append older than the entry leaves it alone')
  })

  t.test('an append whose messages sort before the cached ones drops the entry', async (t) => {
    const { backend } = await s.make(t)
    // Two concurrent inserts: the one that committed second took its timestamp first.
    await backend.fill('k', 5, 'c', sk(10), [msg(10)])
    await backend.append('k', 5, 6, sk(9), sk(9), [msg(9)])
    t.equal(await backend.get('k', 10), null)
  })

  t.test('the first write of a session creates a complete entry; a write to an uncached one nothing', async (t) => {
    const { backend } = await s.make(t)
    await backend.append('new', 0, 3, sk(1), sk(2), msgs(1, 2))
    t.same(summary(await backend.get('new', 10)), { version: 3, flag: 'c', entries: msgs(1, 2) })
    await backend.append('old', 4, 5, sk(3), sk(3), msgs(3))
    t.equal(await backend.get('old', 10), null)
    // A reader that read 'old' at version 4 (before the write) may still fill: the entry is labelled 4, and a
    // reader serves it only while Postgres says the session is at 4 (history-service.ts).
    await backend.fill('old', 4, 'c', sk(2), msgs(1, 2))
    t.same(summary(await backend.get('old', 10))?.version, 4, 'labelled with the version it was read at')
  })

  t.test('invalidations drop older entries only', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(1), msgs(1))
    await backend.invalidate('k', 4)
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1) })
    await backend.invalidate('k', 5)
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1) }, 'same version: no-op')
    await backend.invalidate('k', 6)
    t.equal(await backend.get('k', 10), null, 'a newer change drops it')
    await backend.invalidate('never-cached', 6)
    t.equal(await backend.get('never-cached', 10), null, 'invalidating nothing stores nothing')
  })

  t.test('at most maxEntries messages per session', async (t) => {
    const { backend, prefix } = await s.make(t, { maxEntries: 3 })
    await backend.fill('k', 5, 'c', sk(5), msgs(1, 2, 3, 4, 5))
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'p', entries: msgs(3, 4, 5) }, 'partial, newest')
    await backend.append('k', 5, 6, sk(6), sk(7), msgs(6, 7))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'p', entries: msgs(5, 6, 7) })
    await backend.append('new', 0, 2, sk(1), sk(4), msgs(1, 2, 3, 4))
    t.same(summary(await backend.get('new', 10)), { version: 2, flag: 'p', entries: msgs(2, 3, 4) })
    await backend.append('exact', 0, 2, sk(1), sk(3), msgs(1, 2, 3))
    t.same(summary(await backend.get('exact', 10)), { version: 2, flag: 'c', entries: msgs(1, 2, 3) }, 'at the bound')
    await backend.append('exact', 2, 3, sk(4), sk(4), msgs(4))
    t.same(summary(await backend.get('exact', 10)), { version: 3, flag: 'p', entries: msgs(2, 3, 4) }, 'over it')
    if (prefix) {
      const lengths = await withRaw(backends.redisUrl as string, async (r) => {
        const keys = await scanAll(r, `${prefix}h:*`)
        return Promise.all(keys.map((k) => r.llen(k)))
      })
      t.equal(lengths.length, 3)
      t.ok(
        lengths.every((n) => n <= 4),
        `LLEN <= maxEntries + 1 header (${lengths})`,
      )
    }
  })

  t.test('entries expire after the ttl; reading refreshes it', async (t) => {
    const ttlMs = 600
    const { backend, prefix } = await s.make(t, { ttlMs })
    await backend.fill('k', 1, 'c', sk(1), msgs(1))
    await backend.fill('t', 3, 'c', sk(1), msgs(1))
    if (prefix) {
      const pttls = await withRaw(backends.redisUrl as string, async (r) => {
        const keys = await scanAll(r, `${prefix}h:*`)
        return Promise.all(keys.map((k) => r.pttl(k)))
      })
      t.equal(pttls.length, 2)
      t.ok(
        pttls.every((p) => p > 0 && p <= ttlMs),
        `every entry has a PTTL in (0, ${ttlMs}] (${pttls})`,
      )
    }
    await sleep(350)
    t.ok(await backend.get('k', 10), 'still there before the ttl')
    await sleep(350)
    t.ok(await backend.get('k', 10), 'read at 350 ms: refreshed')
    t.equal(await backend.get('t', 10), null, 'the entry never read expired')
    await sleep(ttlMs + 150)
    t.equal(await backend.get('k', 10), null, 'expired')
    await backend.fill('k', 1, 'c', sk(1), msgs(1))
    t.same(summary(await backend.get('k', 10)), { version: 1, flag: 'c', entries: msgs(1) }, 'a miss, then a fill')
  })

  t.test('keys are independent', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('tenant-a:f1:s', 1, 'c', sk(1), msgs(1))
    await backend.fill('tenant-a:f2:s', 2, 'c', sk(2), msgs(2))
    await backend.fill('tenant-b:f1:s', 3, 'c', sk(3), msgs(3))
    await backend.invalidate('tenant-b:f1:s', 9)
    t.same(summary(await backend.get('tenant-a:f1:s', 10))?.entries, msgs(1))
    t.same(summary(await backend.get('tenant-a:f2:s', 10))?.entries, msgs(2))
    t.equal(await backend.get('tenant-b:f1:s', 10), null)
    t.equal(await backend.get('s', 10), null)
  })
}

t.test('memory backend', async (t) => {
  contract(t, memory)

  t.test('bounded by maxBytes, evicting the least recently used session', async (t) => {
    const maxBytes = 16 * 1024
    const { backend } = await memory.make(t, { maxBytes })
    const entry = (k: number) => [msg(k, 1000), msg(k + 1, 1000)]
    const perKey = 'k00'.length + 64 + entry(0).reduce((n, s) => n + s.length, 0)
    const capacity = Math.floor(maxBytes / perKey)
    t.ok(capacity >= 3, `room for ${capacity} sessions`)
    const name = (i: number) => `k${String(i).padStart(2, '0')}`
    for (let i = 0; i < capacity; i++) await backend.fill(name(i), 1, 'c', sk(1), entry(i))
    for (let i = 0; i < capacity; i++) t.ok(await backend.get(name(i), 10), `${name(i)} cached`)
    // Read k00 again: k01 becomes the least recently used.
    await backend.get('k00', 10)
    await backend.fill('k99', 1, 'c', sk(1), entry(99))
    t.ok(await backend.get('k99', 10), 'the new entry is cached')
    t.ok(await backend.get('k00', 10), 'the recently read entry survived')
    t.equal(await backend.get('k01', 10), null, 'the least recently used entry was evicted')
    let cached = 0
    for (let i = 0; i < 100; i++) if (await backend.get(name(i), 10)) cached++
    t.ok(cached * perKey <= maxBytes, `${cached} entries of ${perKey} bytes fit in ${maxBytes}`)
  })
})

const redisUrl = backends.redisUrl
if (redisUrl) {
  t.test('redis backend', async (t) => {
    const subject = redisSubject(redisUrl)
    contract(t, subject)

    t.test('one key per session under the prefix, hash-tagged, with a header line', async (t) => {
      const { backend, prefix } = await subject.make(t, { ttlMs: 5000 })
      const key = 'tenant%3Aa:6f1c0e9e-2a0b-4c51-9d8f-0e6c1a2b3c4d:s%201'
      await backend.fill(key, 7, 'c', sk(2), msgs(1, 2))
      await withRaw(redisUrl, async (r) => {
        const keys = await scanAll(r, `${prefix}*`)
        t.same(keys, [`${prefix}h:{${key}}`], 'the session part is the Redis Cluster hash tag')
        t.same(await r.lrange(`${prefix}h:{${key}}`, 0, -1), [`7|c|${sk(2)}`, ...msgs(1, 2)])
      })
    })

    t.test('a Redis that is not there: every operation is a quick miss, and the cache comes back', async (t) => {
      const server = await startRedisServer(t)
      const errors: Error[] = []
      const backend = createRedisBackend({
        url: server.url,
        keyPrefix: 'down:',
        commandTimeoutMs: 200,
        retryMs: 100,
        maxEntries: 10,
        ttlMs: 60_000,
        onError: (err) => errors.push(err),
      })
      t.teardown(() => backend.close())
      await waitFor(() => backend.status() === 'up')
      await backend.fill('k', 1, 'c', sk(1), msgs(1))
      t.same(summary(await backend.get('k', 10))?.entries, msgs(1))
      await server.kill()
      await waitFor(() => backend.status() === 'down')
      const started = Date.now()
      t.equal(await backend.get('k', 10), null, 'a miss')
      await backend.append('k', 1, 2, sk(2), sk(2), msgs(2))
      await backend.invalidate('k', 3)
      t.ok(Date.now() - started < 150, `no waiting on a Redis that is down (${Date.now() - started} ms)`)
      t.ok(errors.length >= 1, 'the outage was reported')
      await server.start()
      await waitFor(() => backend.status() === 'up')
      await backend.fill('k', 4, 'c', sk(1), msgs(1))
      t.same(summary(await backend.get('k', 10))?.version, 4, 'used again once Redis answers')
    })
  })
} else {
  t.comment('no Redis reachable (TEST_REDIS_URL unset): the contract ran against the in-process backend only')
}

async function scanAll(r: Redis, pattern: string): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    out.push(...keys)
  } while (cursor !== '0')
  return out
}
