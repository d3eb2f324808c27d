import type { Duplex } from 'node:stream'
import { Cluster, Redis } from 'ioredis'
import type { CachedHistory, HistoryBackend, HistoryBackendOptions, HistoryFlag } from './history-backend.js'

export interface RedisBackendOptions extends HistoryBackendOptions {
  /** One Redis node (`redis://…`), or … */
  url?: string | undefined
  /** … the seed nodes of a Redis Cluster (`host:port`). */
  clusterNodes?: string[] | undefined
  /** Where to reach cluster nodes whose announced `host:port` is not reachable as is (ioredis's `natMap`). */
  natMap?: Record<string, { host: string; port: number }> | undefined
  /** Prefix of every key (lets services and test files share one Redis). */
  keyPrefix: string
  /** A command slower than this counts as a failure: the cache is skipped until Redis answers a PING again. */
  commandTimeoutMs: number
  /** How often a cache that failed is probed (PING) while it is skipped. Default 200. */
  retryMs?: number
  onError?: (err: Error) => void
}

// A history is one list: element 0 is the header "version|flag|lastKey", then the message JSON strings,
// oldest first. One key per session (header and messages expire and are evicted together), and every script
// touches that key only, so a Redis Cluster runs it on the key's slot.
const PRELUDE = `
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

// ARGV: version, flag, lastKey, max, ttl, entries...
const FILL = `${PRELUDE}
local v = header(KEYS[1])
if v and v > tonumber(ARGV[1]) then return 0 end
store(KEYS[1], ARGV[1], ARGV[2], ARGV[3], {unpack(ARGV, 6)}, tonumber(ARGV[4]), ARGV[5])
return 1`

// ARGV: prevVersion, version, firstKey, lastKey, max, ttl, entries...
const APPEND = `${PRELUDE}
local prev, version = tonumber(ARGV[1]), tonumber(ARGV[2])
local entries = {unpack(ARGV, 7)}
local max, ttl = tonumber(ARGV[5]), ARGV[6]
local v, flag, last = header(KEYS[1])
if v then
  if v == prev and (#entries == 0 or ARGV[3] > last) then
    if #entries > 0 then
      redis.call('RPUSH', KEYS[1], unpack(entries))
      last = ARGV[4]
    end
    local n = redis.call('LLEN', KEYS[1]) - 1
    if n > max then
      redis.call('LTRIM', KEYS[1], -max, -1)
      redis.call('LPUSH', KEYS[1], version .. '|p|' .. last)
    else
      redis.call('LSET', KEYS[1], 0, version .. '|' .. flag .. '|' .. last)
    end
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
  end
  if v < version then redis.call('DEL', KEYS[1]) end
  return 0
elseif prev == 0 then
  store(KEYS[1], ARGV[2], 'c', ARGV[4], entries, max, ttl)
  return 1
end
return 0`

// ARGV: version
const INVALIDATE = `${PRELUDE}
local v = header(KEYS[1])
if v and v < tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return 0`

interface HistoryScripts {
  historyFill(key: string, ...argv: (string | number)[]): Promise<number>
  historyAppend(key: string, ...argv: (string | number)[]): Promise<number>
  historyInvalidate(key: string, ...argv: (string | number)[]): Promise<number>
}
type Client = (Redis | Cluster) & HistoryScripts

type NetStream = Duplex

class CommandTimeoutError extends Error {
  constructor(ms: number) {
    super(`history cache command took longer than ${ms} ms`)
  }
}

/**
 * Hot histories in Redis, one node (`url`) or a Cluster (`clusterNodes`, ioredis's Cluster client: it follows
 * MOVED/ASK redirections and failovers). Keys are `<prefix>h:{<tenant>:<flow>:<session>}`: the hash tag keeps a
 * session on one slot. Correctness never depends on Redis (see history-backend.ts); a failure or a command
 * slower than `commandTimeoutMs` only makes the store skip the cache, reading Postgres, until a PING (every
 * `retryMs`) is answered in time: no request waits on a Redis that is down or frozen.
 */
export function createRedisBackend(opts: RedisBackendOptions): HistoryBackend {
  const retryMs = opts.retryMs ?? 200
  const nodeOptions = {
    connectTimeout: Math.max(1000, opts.commandTimeoutMs),
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  }
  const cluster = opts.clusterNodes && opts.clusterNodes.length > 0
  const client = (
    cluster
      ? new Cluster(
          (opts.clusterNodes ?? []).map((node) => {
            const at = node.lastIndexOf(':')
            return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
          }),
          {
            enableOfflineQueue: false,
            lazyConnect: true,
            redisOptions: nodeOptions,
            clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
            retryDelayOnFailover: 100,
            retryDelayOnClusterDown: 100,
            slotsRefreshTimeout: Math.max(1000, opts.commandTimeoutMs),
            natMap: opts.natMap,
          },
        )
      : new Redis(opts.url ?? 'redis://127.0.0.1:6379', {
          ...nodeOptions,
          retryStrategy: (times) => Math.min(times * 100, 2000),
          lazyConnect: true,
        })
  ) as Client
  client.defineCommand('historyFill', { numberOfKeys: 1, lua: FILL })
  client.defineCommand('historyAppend', { numberOfKeys: 1, lua: APPEND })
  client.defineCommand('historyInvalidate', { numberOfKeys: 1, lua: INVALIDATE })
  client.on('error', (err: Error) => failed(err))
  client.on('close', () => failed(new Error('the connection to Redis closed')))
  client.connect().catch(() => {})

  let down = false
  let closed = false
  let probe: NodeJS.Timeout | undefined
  const failed = (err: Error) => {
    // One log line per outage, not one per failed command.
    if (!down) opts.onError?.(err)
    down = true
    probe ??= setTimeout(recover, retryMs).unref()
  }
  const recover = async () => {
    try {
      if (client.status === 'ready') {
        await withTimeout(client.ping())
        down = false
      }
    } catch {
      // still down: probed again below
    }
    probe = undefined
    if (down && !closed) probe = setTimeout(recover, retryMs).unref()
  }
  const usable = () => client.status === 'ready' && !down

  const withTimeout = async <T>(op: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        op,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new CommandTimeoutError(opts.commandTimeoutMs)), opts.commandTimeoutMs)
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  // Every command leaves in a write of its own, and a write is a system call (the largest single cost of a hot read
  // in the profile: docs/benchmarks.md). So the socket is corked when the first command of an event-loop turn is
  // written, and uncorked once that turn's I/O callbacks have run (setImmediate): the commands of every request
  // read in that turn leave in one write. No command waits longer than the turn it was issued in, and each
  // MULTI … EXEC still goes out whole and in order. One node only: a Cluster spreads commands over its nodes.
  let corked: NetStream | undefined
  const batchWrites = () => {
    if (cluster || corked) return
    const stream = (client as Redis).stream as NetStream | undefined
    if (!stream || stream.destroyed) return
    stream.cork()
    corked = stream
    setImmediate(() => {
      corked = undefined
      stream.uncork()
    })
  }

  /** Runs one cache operation within the command timeout; a failure is a miss (or a skipped update). */
  const run = async <T>(op: () => Promise<T>): Promise<T | null> => {
    if (!usable()) return null
    batchWrites()
    try {
      return await withTimeout(op())
    } catch (err) {
      failed(err as Error)
      return null
    }
  }

  const k = (key: string) => `${opts.keyPrefix}h:{${key}}`

  return {
    kind: cluster ? 'redis-cluster' : 'redis',
    status: () => (usable() ? 'up' : 'down'),
    // The hot path. One MULTI instead of a script (atomic all the same; Lua would copy every entry into a
    // table and back), and the entries stay Buffers, to be spliced into the response without decoding.
    async get(key, count) {
      const hk = k(key)
      const replies = await run(() =>
        client.multi().lindex(hk, 0).lrangeBuffer(hk, -count, -1).pexpire(hk, opts.ttlMs).exec(),
      )
      if (!replies) return null
      const error = replies.find(([err]) => err)?.[0]
      if (error) {
        failed(error)
        return null
      }
      const match = /^(\d+)\|([cp])\|/.exec((replies[0]?.[1] as string | null) ?? '')
      if (!match) return null
      const entries = replies[1]?.[1] as Buffer[]
      // A list shorter than `count` + 1 comes back with its header, the one element not starting with '{'.
      if (entries.length > 0 && entries[0]?.[0] !== 0x7b) entries.shift()
      return { version: Number(match[1]), flag: match[2] as HistoryFlag, entries } satisfies CachedHistory
    },
    async fill(key, version, flag, lastKey, entries) {
      await run(() => client.historyFill(k(key), version, flag, lastKey, opts.maxEntries, opts.ttlMs, ...entries))
    },
    async append(key, prevVersion, version, firstKey, lastKey, entries) {
      await run(() =>
        client.historyAppend(k(key), prevVersion, version, firstKey, lastKey, opts.maxEntries, opts.ttlMs, ...entries),
      )
    },
    async invalidate(key, version) {
      await run(() => client.historyInvalidate(k(key), version))
    },
    async close() {
      closed = true
      clearTimeout(probe)
      client.disconnect()
    },
  }
}
