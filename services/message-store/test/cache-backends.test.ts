// The history cache primitives (get / readToken / fill / append / invalidate) as one
// contract, run against the in-process LRU and, when the test command found one,
// against real Redis. The rules under test are the ones history-backend.ts documents.
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
  /** Makes the backend lose track of what it cached (memory: evictions; Redis: the epoch moves on). */
  loseTrack(made: Made): Promise<void>
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
  async loseTrack({ backend }) {
    // Push everything out: more bytes than the whole cache holds, in other keys.
    for (let i = 0; i < 64; i++) {
      const token = backend.readToken()
      await backend.fill(`filler-${i}`, 1, 'c', sk(1), [msg(i, 40_000)], token)
    }
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
  async loseTrack({ prefix }) {
    // Another instance moved the epoch on (it saw an outage).
    await withRaw(url, (r) => r.incr(`${prefix}epoch`))
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
    await backend.fill('k', 5, 'c', sk(3), msgs(1, 2, 3), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1, 2, 3) })
    t.same(summary(await backend.get('k', 2))?.entries, msgs(2, 3), 'count keeps the newest')
    t.same(summary(await backend.get('k', 1))?.entries, msgs(3))
    await backend.fill('empty', 2, 'c', '', [], backend.readToken())
    t.same(summary(await backend.get('empty', 10)), { version: 2, flag: 'c', entries: [] }, 'an empty history')
  })

  t.test('a fill never replaces a newer state', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(2), msgs(1, 2), backend.readToken())
    await backend.fill('k', 4, 'c', sk(1), msgs(1), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1, 2) }, 'older fill refused')
    await backend.fill('k', 6, 'c', sk(3), msgs(1, 2, 3), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'c', entries: msgs(1, 2, 3) }, 'newer fill kept')
    await backend.invalidate('k', 8)
    await backend.fill('k', 7, 'c', sk(3), msgs(1, 2, 3), backend.readToken())
    t.same(
      summary(await backend.get('k', 10)),
      { version: 8, flag: 't', entries: [] },
      'a tombstone beats an older fill',
    )
    await backend.fill('k', 8, 'c', sk(1), msgs(1), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 8, flag: 'c', entries: msgs(1) }, 'the same version fills')
  })

  t.test('a write whose previous version is cached appends to it', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(3), msgs(1, 2, 3), backend.readToken())
    await backend.append('k', 5, 6, sk(4), sk(5), msgs(4, 5))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 'c', entries: msgs(1, 2, 3, 4, 5) })
    // A write of only error messages: the version moves, the entries do not.
    await backend.append('k', 6, 7, '', '', [])
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 'c', entries: msgs(1, 2, 3, 4, 5) })
    // The last key moved to sk(5) with the first append: a message that does not sort after it is refused.
    await backend.append('k', 7, 8, sk(5), sk(6), msgs(6))
    t.same(summary(await backend.get('k', 10)), { version: 8, flag: 't', entries: [] }, 'tombstone, not appended')
  })

  t.test('appends arriving in the wrong order leave a tombstone, never a misordered list', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(1), msgs(1), backend.readToken())
    // Write A (5 -> 6, message 2) committed before write B (6 -> 7, message 3); B's append arrives first.
    await backend.append('k', 6, 7, sk(3), sk(3), msgs(3))
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 't', entries: [] })
    await backend.append('k', 5, 6, sk(2), sk(2), msgs(2))
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 't', entries: [] }, 'the late append is ignored')
    // A reader that read at version 6 (before B) cannot fill; one at 7 can.
    await backend.fill('k', 6, 'c', sk(2), msgs(1, 2), backend.readToken())
    t.equal((await backend.get('k', 10))?.flag, 't')
    await backend.fill('k', 7, 'c', sk(3), msgs(1, 2, 3), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 'c', entries: msgs(1, 2, 3) })
  })

  t.test('an append whose messages sort before the cached ones leaves a tombstone', async (t) => {
    const { backend } = await s.make(t)
    // Two concurrent inserts: the one that committed second took its timestamp first.
    await backend.fill('k', 5, 'c', sk(10), [msg(10)], backend.readToken())
    await backend.append('k', 5, 6, sk(9), sk(9), [msg(9)])
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 't', entries: [] })
  })

  t.test('the first write of a session creates a complete entry; a write to an uncached one a tombstone', async (t) => {
    const { backend } = await s.make(t)
    await backend.append('new', 0, 3, sk(1), sk(2), msgs(1, 2))
    t.same(summary(await backend.get('new', 10)), { version: 3, flag: 'c', entries: msgs(1, 2) })
    const token = backend.readToken()
    // A reader read 'old' at version 4 (before the write); the write (4 -> 5) finds nothing cached.
    await backend.append('old', 4, 5, sk(3), sk(3), msgs(3))
    t.same(summary(await backend.get('old', 10)), { version: 5, flag: 't', entries: [] })
    await backend.fill('old', 4, 'c', sk(2), msgs(1, 2), token)
    t.same(summary(await backend.get('old', 10)), { version: 5, flag: 't', entries: [] }, 'the older fill is refused')
  })

  t.test('stale invalidations and appends never lower the version', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('k', 5, 'c', sk(1), msgs(1), backend.readToken())
    await backend.invalidate('k', 4)
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1) })
    await backend.invalidate('k', 5)
    t.same(summary(await backend.get('k', 10)), { version: 5, flag: 'c', entries: msgs(1) }, 'same version: no-op')
    await backend.invalidate('k', 6)
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 't', entries: [] })
    await backend.append('k', 3, 4, sk(2), sk(2), msgs(2))
    await backend.append('k', 0, 2, sk(2), sk(2), msgs(2))
    t.same(summary(await backend.get('k', 10)), { version: 6, flag: 't', entries: [] })
    await backend.append('k', 6, 7, sk(2), sk(2), msgs(2))
    t.same(summary(await backend.get('k', 10)), { version: 7, flag: 't', entries: [] }, 'no append onto a tombstone')
  })

  t.test('a fill whose token predates a loss of track is refused', async (t) => {
    const made = await s.make(t, { maxBytes: 64 * 1024 })
    const { backend } = made
    const token = backend.readToken()
    await s.loseTrack(made)
    await backend.fill('k', 1, 'c', sk(1), msgs(1), token)
    t.equal(await backend.get('k', 10), null, 'nothing stored with the old token')
    await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 1, flag: 'c', entries: msgs(1) }, 'a new token works')
  })

  t.test('an entry too large to keep never lets an older fill in', async (t) => {
    const { backend } = await s.make(t, { maxBytes: 8 * 1024 })
    await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
    // A reader takes its token and reads version 1; then a write (1 -> 2) ...
    const slowToken = backend.readToken()
    await backend.invalidate('k', 2)
    // ... a second reader fills version 2, larger than the whole in-process cache ...
    await backend.fill('k', 2, 'c', sk(2), [msg(1), msg(2, 20_000)], backend.readToken())
    // ... and the first reader's fill arrives.
    await backend.fill('k', 1, 'c', sk(1), msgs(1), slowToken)
    const got = await backend.get('k', 10)
    t.ok(got === null || got.version >= 2, `never version 1 again (got ${JSON.stringify(summary(got))?.slice(0, 80)})`)
  })

  t.test('an append growing an entry beyond what can be kept never lets an older fill in', async (t) => {
    const { backend } = await s.make(t, { maxBytes: 8 * 1024 })
    await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
    const slowToken = backend.readToken()
    await backend.append('k', 1, 2, sk(2), sk(2), [msg(2, 20_000)])
    await backend.fill('k', 1, 'c', sk(1), msgs(1), slowToken)
    const got = await backend.get('k', 10)
    t.ok(got === null || got.version >= 2, `never version 1 again (got ${JSON.stringify(summary(got))?.slice(0, 80)})`)
  })

  t.test('at most maxEntries messages per session', async (t) => {
    const { backend, prefix } = await s.make(t, { maxEntries: 3 })
    await backend.fill('k', 5, 'c', sk(5), msgs(1, 2, 3, 4, 5), backend.readToken())
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
    await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
    await backend.invalidate('t', 3)
    if (prefix) {
      const pttls = await withRaw(backends.redisUrl as string, async (r) => {
        const keys = await scanAll(r, `${prefix}h:*`)
        return Promise.all(keys.map((k) => r.pttl(k)))
      })
      t.equal(pttls.length, 2)
      t.ok(
        pttls.every((p) => p > 0 && p <= ttlMs),
        `every entry and tombstone has a PTTL in (0, ${ttlMs}] (${pttls})`,
      )
    }
    await sleep(350)
    t.ok(await backend.get('k', 10), 'still there before the ttl')
    await sleep(350)
    t.ok(await backend.get('k', 10), 'read at 350 ms: refreshed')
    t.equal(await backend.get('t', 10), null, 'the tombstone, never read, expired')
    await sleep(ttlMs + 150)
    t.equal(await backend.get('k', 10), null, 'expired')
    await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
    t.same(summary(await backend.get('k', 10)), { version: 1, flag: 'c', entries: msgs(1) }, 'a miss, then a fill')
  })

  t.test('keys are independent', async (t) => {
    const { backend } = await s.make(t)
    await backend.fill('tenant-a:f1:s', 1, 'c', sk(1), msgs(1), backend.readToken())
    await backend.fill('tenant-a:f2:s', 2, 'c', sk(2), msgs(2), backend.readToken())
    await backend.invalidate('tenant-b:f1:s', 9)
    t.same(summary(await backend.get('tenant-a:f1:s', 10))?.entries, msgs(1))
    t.same(summary(await backend.get('tenant-a:f2:s', 10))?.entries, msgs(2))
    t.equal((await backend.get('tenant-b:f1:s', 10))?.flag, 't')
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
    for (let i = 0; i < capacity; i++) await backend.fill(name(i), 1, 'c', sk(1), entry(i), backend.readToken())
    for (let i = 0; i < capacity; i++) t.ok(await backend.get(name(i), 10), `${name(i)} cached`)
    // Read k00 again: k01 becomes the least recently used.
    await backend.get('k00', 10)
    await backend.fill('k99', 1, 'c', sk(1), entry(99), backend.readToken())
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

    t.test('keys live under the prefix, carry the epoch and a header line', async (t) => {
      const { backend, prefix } = await subject.make(t, { ttlMs: 5000 })
      const key = 'tenant%3Aa:6f1c0e9e-2a0b-4c51-9d8f-0e6c1a2b3c4d:s%201'
      await backend.fill(key, 7, 'c', sk(2), msgs(1, 2), backend.readToken())
      await withRaw(redisUrl, async (r) => {
        const epoch = await r.get(`${prefix}epoch`)
        t.match(epoch, /^\d+$/)
        const keys = await scanAll(r, `${prefix}*`)
        t.same(keys.sort(), [`${prefix}epoch`, `${prefix}h:${epoch}:${key}`].sort())
        t.same(await r.lrange(`${prefix}h:${epoch}:${key}`, 0, -1), [`7|c|${sk(2)}`, ...msgs(1, 2)])
        t.equal(await r.pttl(`${prefix}epoch`), -1, 'the epoch never expires')
      })
    })

    t.test('an epoch moved on by another instance makes every older entry unreachable', async (t) => {
      const made = await subject.make(t)
      const other = createRedisBackend({
        url: redisUrl,
        keyPrefix: made.prefix as string,
        commandTimeoutMs: 2000,
        maxEntries: 100,
        ttlMs: 60_000,
      })
      t.teardown(() => other.close())
      await waitFor(() => other.status() === 'up')
      // `other` connected after `made`, so it moved the epoch on: `made` follows on its next command.
      await made.backend.fill('k', 1, 'c', sk(1), msgs(1), made.backend.readToken())
      await other.fill('k', 2, 'c', sk(2), msgs(1, 2), other.readToken())
      t.same(summary(await made.backend.get('k', 10))?.entries, msgs(1, 2), 'both instances share the current epoch')
      await subject.loseTrack(made)
      t.equal(await made.backend.get('k', 10), null, 'after the epoch moved on: a miss')
      t.equal(await other.get('k', 10), null, 'for every instance')
      t.equal(made.backend.status(), 'up', 'a newer epoch is simply followed')
    })

    t.test('an epoch that went back (Redis restored old data) is distrusted and moved on', async (t) => {
      const { backend, prefix } = await subject.make(t)
      await backend.fill('k', 1, 'c', sk(1), msgs(1), backend.readToken())
      await backend.append('k', 1, 2, sk(2), sk(2), msgs(2))
      const before = Number(await withRaw(redisUrl, (r) => r.get(`${prefix}epoch`)))
      // Simulate a restore of an older snapshot: the epoch goes back and an old entry of it reappears.
      const old = before - 1
      await withRaw(redisUrl, async (r) => {
        await r.set(`${prefix}epoch`, String(old))
        await r.del(`${prefix}h:${before}:k`)
        await r.rpush(`${prefix}h:${old}:k`, `1|c|${sk(1)}`, msg(1))
      })
      const token = backend.readToken()
      t.equal(await backend.get('k', 10), null, 'a miss, not the restored entry')
      await waitFor(() => backend.status() === 'up')
      const after = Number(await withRaw(redisUrl, (r) => r.get(`${prefix}epoch`)))
      t.ok(after > old, `the epoch moved on (${old} -> ${after})`)
      t.equal(await backend.get('k', 10), null, 'the restored entry is never served')
      await backend.fill('k', 1, 'c', sk(1), msgs(1), token)
      t.equal(await backend.get('k', 10), null, 'a fill with a token from before the restore is refused')
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
