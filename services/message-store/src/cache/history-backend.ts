/**
 * Storage for hot session histories. Each operation is atomic per key; the rules
 * that keep the cache consistent with Postgres live in the operations themselves:
 *
 * - an entry carries the session `version` it reflects; nothing replaces an entry
 *   with one of a lower version;
 * - a writer, after its commit, either appends to an entry that is exactly at the
 *   version before its write (and whose last message sorts before the new ones), or
 *   leaves a tombstone with its new version, so a reader that read Postgres before
 *   the write can never fill the cache with the older state;
 * - a reader fills only with a token taken before it read Postgres; the token is
 *   refused if anything happened meanwhile that could hide a tombstone (eviction,
 *   an outage of the cache).
 */
export type HistoryFlag = 'c' | 'p' | 't'

export interface CachedHistory {
  version: number
  /** c: entries are the whole history; p: the latest part of it; t: tombstone (no entries). */
  flag: HistoryFlag
  /** Message JSON, oldest first (Buffers from Redis, spliced into responses undecoded). */
  entries: Array<string | Buffer>
}

export interface HistoryBackend {
  readonly kind: 'redis' | 'memory'
  /** `up`, or `down` while the cache is not trusted (reads and writes then go to Postgres only). */
  status(): 'up' | 'down'
  /** The cached history of `key` (at most the `count` newest entries), or null. */
  get(key: string, count: number): Promise<CachedHistory | null>
  /** A token to pass to `fill`, taken before reading Postgres. */
  readToken(): number
  /** Stores a history read from Postgres at `version`, unless a newer state is known. */
  fill(key: string, version: number, flag: 'c' | 'p', lastKey: string, entries: string[], token: number): Promise<void>
  /** Appends entries written at `version` (the session was at `prevVersion` before). */
  append(
    key: string,
    prevVersion: number,
    version: number,
    firstKey: string,
    lastKey: string,
    entries: string[],
  ): Promise<void>
  /** Marks the session changed at `version` (edit, delete, rename). */
  invalidate(key: string, version: number): Promise<void>
  close(): Promise<void>
}

export interface HistoryBackendOptions {
  /** Most messages kept per session. */
  maxEntries: number
  /** Expiry of an entry (refreshed when it is read or written). */
  ttlMs: number
}
