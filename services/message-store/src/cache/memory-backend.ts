import { LRUCache } from 'lru-cache'
import type { CachedHistory, HistoryBackend, HistoryBackendOptions, HistoryFlag } from './history-backend.js'

interface Entry {
  version: number
  flag: HistoryFlag
  lastKey: string
  entries: string[]
}

export interface MemoryBackendOptions extends HistoryBackendOptions {
  /** Bound on the whole cache, in bytes of message JSON (UTF-16 length as a proxy). */
  maxBytes: number
}

/**
 * The in-process cache used when no REDIS_URL is given: a bounded LRU with the
 * same consistency rules as the Redis backend (see history-backend.ts).
 */
export function createMemoryBackend(opts: MemoryBackendOptions): HistoryBackend {
  let evictions = 0
  const sizeOf = (e: Entry, key: string) => key.length + 64 + e.entries.reduce((n, s) => n + s.length, 0)
  const lru = new LRUCache<string, Entry>({
    maxSize: opts.maxBytes,
    ttl: opts.ttlMs,
    updateAgeOnGet: true,
    sizeCalculation: sizeOf,
    dispose: (_value, _key, reason) => {
      if (reason === 'evict' || reason === 'expire') evictions++
    },
  })

  // An entry larger than the whole cache is not stored by lru-cache, which drops the
  // key's current entry instead (a tombstone, maybe) without counting an eviction:
  // keep a tombstone at the entry's version then, and if even that does not fit,
  // count the loss so that fills with older tokens are refused.
  const put = (key: string, entry: Entry) => {
    if (sizeOf(entry, key) > opts.maxBytes) entry = { version: entry.version, flag: 't', lastKey: '', entries: [] }
    if (sizeOf(entry, key) > opts.maxBytes) {
      lru.delete(key)
      evictions++
      return
    }
    lru.set(key, entry)
  }

  const tombstone = (key: string, version: number) => put(key, { version, flag: 't', lastKey: '', entries: [] })

  const store = (key: string, version: number, flag: HistoryFlag, lastKey: string, entries: string[]) => {
    if (entries.length > opts.maxEntries) {
      entries = entries.slice(entries.length - opts.maxEntries)
      flag = 'p'
    }
    put(key, { version, flag, lastKey, entries })
  }

  return {
    kind: 'memory',
    status: () => 'up',
    async get(key, count) {
      const e = lru.get(key)
      if (!e) return null
      const entries = e.entries.length > count ? e.entries.slice(e.entries.length - count) : e.entries
      return { version: e.version, flag: e.flag, entries } satisfies CachedHistory
    },
    readToken: () => evictions,
    async fill(key, version, flag, lastKey, entries, token) {
      const current = lru.peek(key)
      if (current ? current.version > version : token !== evictions) return
      store(key, version, flag, lastKey, entries)
    },
    async append(key, prevVersion, version, firstKey, lastKey, entries) {
      const current = lru.peek(key)
      if (current) {
        if (
          current.version === prevVersion &&
          current.flag !== 't' &&
          (entries.length === 0 || firstKey > current.lastKey)
        ) {
          store(key, version, current.flag, entries.length ? lastKey : current.lastKey, current.entries.concat(entries))
          return
        }
        if (current.version >= version) return
      } else if (prevVersion === 0) {
        // The session had no messages before this write: these are its whole history.
        store(key, version, 'c', lastKey, entries)
        return
      }
      tombstone(key, version)
    },
    async invalidate(key, version) {
      const current = lru.peek(key)
      if (current && current.version >= version) return
      tombstone(key, version)
    },
    async close() {
      lru.clear()
    },
  }
}
