import type { Database } from '@session-runtime/db'
import type { HistoryQuery } from '@session-runtime/schemas'
import type { HistoryBackend } from '../cache/history-backend.js'
import type { HistoryEntry, SessionAppend, SessionChange } from './repository/changes.js'
import { readHistory, readHistoryJson, readVersions } from './repository/history-reads.js'
import { VersionLookups } from './version-lookups.js'

export interface HistoryServiceOptions {
  /** Most messages cached per session (and fetched from Postgres to fill the cache). */
  maxEntries: number
  /** A message whose JSON is longer than this is never cached (keeps entries bounded). */
  maxMessageBytes: number
  /** Version lookup statements in flight at once; lookups arriving meanwhile go together in the next one (2). */
  lookupConcurrency?: number
  onError?: (err: Error, op: string) => void
}

/** The cache key of a session: tenant and flow always, never the session ID alone. */
export function historyKey(tenant: string, flowId: string, sessionId: string): string {
  return `${encodeURIComponent(tenant)}:${flowId}:${encodeURIComponent(sessionId)}`
}

/**
 * Session histories with a read-through cache that never serves a state older than an acknowledged change,
 * whichever instance acknowledged it and whatever happened to the cache: every read looks up the session's
 * version in Postgres (a primary-key read, sent together with the cache read; concurrent reads' lookups go
 * in one statement, domain/version-lookups.ts) and serves the cached copy only
 * when it is at exactly that version. Postgres holds the truth; the cache saves reading and building the
 * messages. Writers keep the cache warm by appending after they commit (see cache/history-backend.ts).
 */
export class HistoryService {
  hits = 0
  misses = 0
  private readonly versions: VersionLookups

  constructor(
    private readonly db: Database,
    private readonly cache: HistoryBackend | undefined,
    private readonly opts: HistoryServiceOptions,
  ) {
    // At most 1,000 sessions per statement (a bound on its arrays; a lookup is ~100 bytes of parameters).
    this.versions = new VersionLookups((keys) => readVersions(db, keys), {
      maxInFlight: opts.lookupConcurrency ?? 2,
      maxBatch: 1000,
      // The reads of one event-loop turn share one statement (one round trip, one socket write): writes to a
      // socket were the largest cost of a hot read in its profile (docs/benchmarks.md, 2026-12-07).
      gatherTurn: true,
    })
  }

  /** Version lookup statements run so far (with hits + misses: how much coalescing happens). */
  get lookupStatements(): number {
    return this.versions.statements
  }

  /** The latest `limit` non-error messages of a session, as JSON array text. */
  async read(tenant: string, q: HistoryQuery): Promise<string | Buffer> {
    const filter = { sender: q.sender, senderName: q.sender_name }
    const filtered = q.sender !== undefined || q.sender_name !== undefined
    const key = historyKey(tenant, q.flow_id, q.session_id)
    const cache = this.cache?.status() === 'up' ? this.cache : undefined
    if (cache) {
      const [version, cached] = await Promise.all([
        this.versions.get(tenant, q.flow_id, q.session_id),
        cache.get(key, filtered ? this.opts.maxEntries : q.limit).catch(() => null),
      ])
      if (version === 0) {
        // No such session: nothing to read, nothing to cache (counted as a miss: the database answered).
        this.misses++
        return '[]'
      }
      if (cached && cached.version === version) {
        let entries = cached.entries
        if (filtered) entries = entries.filter((json) => matches(JSON.parse(json.toString()), filter))
        if (entries.length >= q.limit || cached.flag === 'c') {
          this.hits++
          return toArray(entries.slice(Math.max(0, entries.length - q.limit)), q.order)
        }
      }
    }
    this.misses++
    if (!cache || filtered) {
      return readHistoryJson(this.db, tenant, q.flow_id, q.session_id, q.limit, q.order, filter)
    }
    const fetch = Math.max(q.limit, this.opts.maxEntries)
    const snapshot = await readHistory(this.db, tenant, q.flow_id, q.session_id, fetch + 1)
    const newestFirst = snapshot.entries.slice(0, fetch)
    await this.fill(cache, key, snapshot.version, newestFirst, snapshot.entries.length <= fetch)
    return toArray(
      newestFirst
        .slice(0, q.limit)
        .map((e) => e.json)
        .reverse(),
      q.order,
    )
  }

  private async fill(
    cache: HistoryBackend,
    key: string,
    version: number,
    newestFirst: HistoryEntry[],
    complete: boolean,
  ) {
    // Cache the newest run of messages that are all small enough.
    const kept: HistoryEntry[] = []
    for (const entry of newestFirst) {
      if (kept.length === this.opts.maxEntries || entry.json.length > this.opts.maxMessageBytes) {
        complete = false
        break
      }
      kept.push(entry)
    }
    kept.reverse()
    const json = kept.map((e) => e.json)
    await cache
      .fill(key, version, complete ? 'c' : 'p', kept.at(-1)?.sortKey ?? '', json)
      .catch((err) => this.opts.onError?.(err, 'fill'))
  }

  /** After a committed insert: append the new messages to the cached histories. */
  async afterInsert(appends: SessionAppend[]): Promise<void> {
    const cache = this.cache
    if (!cache) return
    await Promise.all(
      appends.map((a) => {
        const key = historyKey(a.tenant, a.flowId, a.sessionId)
        if (a.entries.some((e) => e.json.length > this.opts.maxMessageBytes)) return cache.invalidate(key, a.version)
        return cache.append(
          key,
          a.prevVersion,
          a.version,
          a.entries[0]?.sortKey ?? '',
          a.entries.at(-1)?.sortKey ?? '',
          a.entries.map((e) => e.json),
        )
      }),
    ).catch((err) => this.opts.onError?.(err, 'append'))
  }

  /** After a committed edit, delete, rename or mark: cached states older than it are dropped (saves memory). */
  async afterChange(tenant: string, changes: SessionChange[]): Promise<void> {
    const cache = this.cache
    if (!cache) return
    await Promise.all(changes.map((c) => cache.invalidate(historyKey(tenant, c.flowId, c.sessionId), c.version))).catch(
      (err) => this.opts.onError?.(err, 'invalidate'),
    )
  }
}

function matches(
  message: { sender?: string; sender_name?: string },
  filter: { sender?: string | undefined; senderName?: string | undefined },
) {
  return (
    (filter.sender === undefined || message.sender === filter.sender) &&
    (filter.senderName === undefined || message.sender_name === filter.senderName)
  )
}

const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

/** Splices message JSON (strings, or Buffers from Redis) into one JSON array, without parsing it. */
function toArray(oldestFirst: Array<string | Buffer>, order: 'ASC' | 'DESC'): string | Buffer {
  const list = order === 'DESC' ? oldestFirst.slice().reverse() : oldestFirst
  if (!list.some(Buffer.isBuffer)) return `[${list.join(',')}]`
  const parts: Buffer[] = [OPEN]
  list.forEach((entry, i) => {
    if (i > 0) parts.push(COMMA)
    parts.push(Buffer.isBuffer(entry) ? entry : Buffer.from(entry))
  })
  parts.push(CLOSE)
  return Buffer.concat(parts)
}
