import { Redis } from 'ioredis'
import type { CachedHistory, HistoryBackend, HistoryBackendOptions, HistoryFlag } from './history-backend.js'

export interface RedisBackendOptions extends HistoryBackendOptions {
  url: string
  /** Prefix of every key (lets services and test files share one Redis). */
  keyPrefix: string
  /** A command slower than this counts as a failure: the cache is bypassed. */
  commandTimeoutMs: number
  onError?: (err: Error) => void
}

// Every script first checks the epoch: a mismatch answers {'E', epoch} and does nothing.
// A history is one list: element 0 is the header "version|flag|lastKey", then the
// message JSON strings, oldest first. One key per session, so header and messages
// expire and are evicted together.
const PRELUDE = `
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {'E', epoch or ''} end
local function header(key)
  local h = redis.call('LINDEX', key, 0)
  if not h then return nil end
  local v, flag, last = string.match(h, '^(%d+)|(%a)|(.*)$')
  return tonumber(v), flag, last
end
local function store(key, version, flag, last, entries, max, ttl)
  redis.call('DEL', key)
  if #entries > max then
    local kept = {}
    for i = #entries - max + 1, #entries do kept[#kept + 1] = entries[i] end
    entries = kept
    flag = 'p'
  end
  redis.call('RPUSH', key, version .. '|' .. flag .. '|' .. last, unpack(entries))
  redis.call('PEXPIRE', key, ttl)
end
`

// ARGV: epoch, version, flag, lastKey, max, ttl, entries...
const FILL = `${PRELUDE}
local v = header(KEYS[2])
if v and v > tonumber(ARGV[2]) then return {'S'} end
store(KEYS[2], ARGV[2], ARGV[3], ARGV[4], {unpack(ARGV, 7)}, tonumber(ARGV[5]), ARGV[6])
return {'OK'}`

// ARGV: epoch, prevVersion, version, firstKey, lastKey, max, ttl, entries...
const APPEND = `${PRELUDE}
local prev, version = tonumber(ARGV[2]), tonumber(ARGV[3])
local entries = {unpack(ARGV, 8)}
local max, ttl = tonumber(ARGV[6]), ARGV[7]
local v, flag, last = header(KEYS[2])
if v then
  if v == prev and flag ~= 't' and (#entries == 0 or ARGV[4] > last) then
    if #entries > 0 then
      redis.call('RPUSH', KEYS[2], unpack(entries))
      last = ARGV[5]
    end
    local n = redis.call('LLEN', KEYS[2]) - 1
    if n > max then
      redis.call('LTRIM', KEYS[2], -max, -1)
      redis.call('LPUSH', KEYS[2], version .. '|p|' .. last)
    else
      redis.call('LSET', KEYS[2], 0, version .. '|' .. flag .. '|' .. last)
    end
    redis.call('PEXPIRE', KEYS[2], ttl)
    return {'OK'}
  end
  if v >= version then return {'S'} end
elseif prev == 0 then
  store(KEYS[2], ARGV[3], 'c', ARGV[5], entries, max, ttl)
  return {'OK'}
end
store(KEYS[2], ARGV[3], 't', '', {}, max, ttl)
return {'T'}`

// ARGV: epoch, version, ttl
const INVALIDATE = `${PRELUDE}
local v = header(KEYS[2])
if v and v >= tonumber(ARGV[2]) then return {'S'} end
store(KEYS[2], ARGV[2], 't', '', {}, 1, ARGV[3])
return {'T'}`

type ScriptReply = string[]

/** How long to wait before moving the epoch on again after that failed. */
const RECOVER_RETRY_MS = 500

interface ScriptedRedis extends Redis {
  historyFill(epochKey: string, key: string, ...argv: (string | number)[]): Promise<ScriptReply>
  historyAppend(epochKey: string, key: string, ...argv: (string | number)[]): Promise<ScriptReply>
  historyInvalidate(epochKey: string, key: string, ...argv: (string | number)[]): Promise<ScriptReply>
}

/**
 * Hot histories in Redis. Keys are `<prefix>h:<epoch>:<key>`; the epoch moves on
 * after any failure or outage, which makes every entry written before it
 * unreachable: when Redis comes back, no stale entry is served. While the cache is
 * not trusted (`status() === 'down'`), reads miss and writes skip it.
 */
export function createRedisBackend(opts: RedisBackendOptions): HistoryBackend {
  const epochKey = `${opts.keyPrefix}epoch`
  const redis = new Redis(opts.url, {
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: Math.max(1000, opts.commandTimeoutMs),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    lazyConnect: true,
  }) as ScriptedRedis
  redis.defineCommand('historyFill', { numberOfKeys: 2, lua: FILL })
  redis.defineCommand('historyAppend', { numberOfKeys: 2, lua: APPEND })
  redis.defineCommand('historyInvalidate', { numberOfKeys: 2, lua: INVALIDATE })

  let epoch = ''
  let trusted = false
  /** Changes whenever trust is lost or regained: fills read before a change are refused. */
  let generation = 0
  let recovering: Promise<void> | undefined
  let retry: NodeJS.Timeout | undefined
  let closed = false

  const distrust = (err?: Error) => {
    if (trusted) {
      if (err) opts.onError?.(err)
      generation++
    }
    trusted = false
    if (!closed && redis.status === 'ready') void recover()
  }

  // Moving the epoch on makes everything cached before the failure unreachable.
  const recover = () => {
    recovering ??= (async () => {
      try {
        epoch = String(await redis.incr(epochKey))
        generation++
        trusted = true
      } catch (err) {
        opts.onError?.(err as Error)
        // A command timeout (Redis hung, e.g. SIGSTOP) leaves the connection up, so no
        // 'ready' event will come: without trying again the cache would stay off for good.
        retry ??= setTimeout(() => {
          retry = undefined
          if (!closed && !trusted && redis.status === 'ready') void recover()
        }, RECOVER_RETRY_MS)
        retry.unref()
      } finally {
        recovering = undefined
      }
    })()
    return recovering
  }

  redis.on('ready', () => void recover())
  redis.on('error', (err: Error) => distrust(err))
  redis.on('close', () => distrust())
  redis.connect().catch(() => {})

  const k = (key: string) => `${opts.keyPrefix}h:${epoch}:${key}`

  /**
   * Another instance moved the epoch on: follow it. A lower or missing epoch means
   * Redis lost or restored its data: move it on ourselves.
   */
  const epochMismatch = (current: string | null, started: number) => {
    if (started !== generation) return
    if (Number(current || 0) > Number(epoch)) {
      epoch = String(current)
      generation++
    } else {
      distrust()
    }
  }

  /** Runs a script; an epoch mismatch or a failure is a miss for this call. */
  const run = async (fn: () => Promise<ScriptReply>): Promise<ScriptReply | null> => {
    if (!trusted) return null
    const started = generation
    try {
      const reply = await fn()
      if (reply[0] === 'E') {
        epochMismatch(reply[1] ?? null, started)
        return null
      }
      return reply
    } catch (err) {
      distrust(err as Error)
      return null
    }
  }

  return {
    kind: 'redis',
    status: () => (trusted ? 'up' : 'down'),
    // The hot path. One MULTI instead of a script (atomic all the same; Lua would
    // copy every entry into a table and back), and the entries stay Buffers, to be
    // spliced into the response without decoding (docs/benchmarks.md).
    async get(key, count) {
      if (!trusted) return null
      const started = generation
      const hk = k(key)
      let replies: [Error | null, unknown][] | null
      try {
        replies = await redis
          .multi()
          .get(epochKey)
          .lindex(hk, 0)
          .lrangeBuffer(hk, -count, -1)
          .pexpire(hk, opts.ttlMs)
          .exec()
      } catch (err) {
        distrust(err as Error)
        return null
      }
      if (!replies) return null
      const failed = replies.find(([err]) => err)
      if (failed) {
        distrust(failed[0] as Error)
        return null
      }
      const current = replies[0]?.[1] as string | null
      if (current !== epoch) {
        epochMismatch(current, started)
        return null
      }
      const match = /^(\d+)\|([cpt])\|/.exec((replies[1]?.[1] as string | null) ?? '')
      if (!match) return null
      const entries = replies[2]?.[1] as Buffer[]
      // A list shorter than `count` + 1 comes back with its header, the one element not starting with '{'.
      if (entries.length > 0 && entries[0]?.[0] !== 0x7b) entries.shift()
      return { version: Number(match[1]), flag: match[2] as HistoryFlag, entries } satisfies CachedHistory
    },
    readToken: () => (trusted ? generation : -1),
    async fill(key, version, flag, lastKey, entries, token) {
      if (token !== generation) return
      await run(() =>
        redis.historyFill(epochKey, k(key), epoch, version, flag, lastKey, opts.maxEntries, opts.ttlMs, ...entries),
      )
    },
    async append(key, prevVersion, version, firstKey, lastKey, entries) {
      if (!trusted) return
      await run(() =>
        redis.historyAppend(
          epochKey,
          k(key),
          epoch,
          prevVersion,
          version,
          firstKey,
          lastKey,
          opts.maxEntries,
          opts.ttlMs,
          ...entries,
        ),
      )
    },
    async invalidate(key, version) {
      if (!trusted) return
      await run(() => redis.historyInvalidate(epochKey, k(key), epoch, version, opts.ttlMs))
    },
    async close() {
      closed = true
      trusted = false
      clearTimeout(retry)
      redis.disconnect()
    },
  }
}
