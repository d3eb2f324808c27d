/**
 * Storage for hot session histories: a copy of a session's latest messages, labelled with the session
 * `version` (from Postgres) it reflects. The cache is never the truth: a reader serves an entry only when its
 * version equals the session's version read from Postgres in the same request (domain/history-service.ts).
 * So nothing a backend loses, keeps too long or gets wrong can make a reader serve a stale history: an entry
 * that was not updated (an instance cut off from Redis, an eviction, a Redis restarted with old data, a
 * failover that lost the last writes) is at an older version and is not served. The rules below only keep the
 * hit rate up:
 *
 * - nothing replaces an entry with one of a lower version (a slow fill does not undo a newer append);
 * - a writer, after its commit, appends to an entry that is exactly at the version before its write (and
 *   whose last message sorts before the new ones); any other entry of an older version is dropped.
 *
 * Each operation is atomic per key, and touches one key: a Redis Cluster runs it on the key's own slot.
 */
export type HistoryFlag = 'c' | 'p'

export interface CachedHistory {
  version: number
  /** c: entries are the whole history; p: the latest part of it. */
  flag: HistoryFlag
  /** Message JSON, oldest first (Buffers from Redis, spliced into responses undecoded). */
  entries: Array<string | Buffer>
}

export interface HistoryBackend {
  /** What the cache is, as the start-up log and /ready name it. */
  readonly kind: 'redis' | 'redis-cluster' | 'memory'
  /** `down` after a failure, until the cache answers again: reads and writes then skip it. */
  status(): 'up' | 'down'
  /** The cached history of `key` (at most the `count` newest entries), or null. */
  get(key: string, count: number): Promise<CachedHistory | null>
  /** Stores a history read from Postgres at `version`, unless a newer one is cached. */
  fill(key: string, version: number, flag: HistoryFlag, lastKey: string, entries: string[]): Promise<void>
  /** Appends entries written at `version` (the session was at `prevVersion` before). */
  append(
    key: string,
    prevVersion: number,
    version: number,
    firstKey: string,
    lastKey: string,
    entries: string[],
  ): Promise<void>
  /** Drops the entry if it is older than `version` (the session changed: edit, delete, rename, mark). */
  invalidate(key: string, version: number): Promise<void>
  close(): Promise<void>
}

export interface HistoryBackendOptions {
  /** Most messages kept per session. */
  maxEntries: number
  /** Expiry of an entry (refreshed when it is read or written). */
  ttlMs: number
}
