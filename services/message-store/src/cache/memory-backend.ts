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
 * The in-process cache used when no Redis is configured: a bounded LRU with the same rules as the Redis
 * backend (see history-backend.ts). Each instance has its own; it stays right beside other instances because
 * every read checks the entry's version against Postgres.
 */
export function createMemoryBackend(opts: MemoryBackendOptions): HistoryBackend {
  const sizeOf = (e: Entry, key: string) => key.length + 64 + e.entries.reduce((n, s) => n + s.length, 0)
  const lru = new LRUCache<string, Entry>({
    maxSize: opts.maxBytes,
    ttl: opts.ttlMs,
    updateAgeOnGet: true,
    sizeCalculation: sizeOf,
  })

  const store = (key: string, version: number, flag: HistoryFlag, lastKey: string, entries: string[]) => {
    if (entries.length > opts.maxEntries) {
      entries = entries.slice(entries.length - opts.maxEntries)
      flag = 'p'
    }
    const entry = { version, flag, lastKey, entries }
    // lru-cache refuses an entry larger than the whole cache (and drops the key's current one).
    if (sizeOf(entry, key) > opts.maxBytes) lru.delete(key)
    else lru.set(key, entry)
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
    async fill(key, version, flag, lastKey, entries) {
      const current = lru.peek(key)
      if (current && current.version > version) return
      store(key, version, flag, lastKey, entries)
    },
    async append(key, prevVersion, version, firstKey, lastKey, entries) {
      const current = lru.peek(key)
      if (current) {
        if (current.version === prevVersion && (entries.length === 0 || firstKey > current.lastKey)) {
          store(key, version, current.flag, entries.length ? lastKey : current.lastKey, current.entries.concat(entries))
        } else if (current.version < version) {
          lru.delete(key)
        }
      } else if (prevVersion === 0) {
        // The session had no messages before this write: these are its whole history.
        store(key, version, 'c', lastKey, entries)
      }
    },
    async invalidate(key, version) {
      const current = lru.peek(key)
      if (current && current.version < version) lru.delete(key)
    },
    async close() {
      lru.clear()
    },
  }
}
