import { randomUUID } from 'node:crypto'
import type { Database } from '@session-runtime/db'
import type {
  EraseSessionsResponse,
  FeedbackQuery,
  HistoryQuery,
  MessageInput,
  MessagesQuery,
  MessageUpdate,
  SearchQuery,
  SessionMetadataPatch,
  SessionsQuery,
} from '@session-runtime/schemas'
import type { HistoryBackend } from '../../cache/history-backend.js'
import { HistoryService, type HistoryServiceOptions } from '../history-service.js'
import { MessageWriter, type MessageWriterOptions } from '../message-writer.js'
import type { SessionChange } from './changes.js'
import { forkSession } from './fork.js'
import { type InsertResult, insertMessages, type StoredMessage, type WriteRequest } from './insert.js'
import { listFeedback, listMessages, listSessionIds, listSessions, type Page } from './monitor-pages.js'
import { deleteFlowMessages, deleteMessages, markMessagesFailed, updateMessage } from './mutations.js'
import {
  dropPartitionIfExpired,
  ensurePartitions,
  forgetDroppedIds,
  listPartitions,
  type MessagePartition,
  repairDroppedRange,
} from './partitions.js'
import {
  acquireSweepLease,
  listRetentionRules,
  type RetentionRule,
  readRetention,
  releaseSweepLease,
  type SweepBatch,
  sweepBatch,
  type TenantRetention,
  writeRetention,
} from './retention.js'
import { searchMessages } from './search.js'
import {
  eraseBatch,
  type MessageKey,
  matchingSessionsPage,
  patchSessionMetadata,
  readSessionSummary,
  sessionMessagesPage,
} from './session-lifecycle.js'
import { deleteSessions, renameSession, type SessionKey } from './sessions.js'

/** Messages one export read fetches (a keyset page): what an export holds in memory at most, with the socket's buffer. */
const EXPORT_PAGE_MESSAGES = 1000
/** Sessions one export read fetches. */
const EXPORT_PAGE_SESSIONS = 100
/** Sessions one erase transaction deletes: no statement holds the locks of a whole user's sessions. */
const ERASE_BATCH_SESSIONS = 100

export interface MessageRepositoryOptions {
  history: HistoryServiceOptions
  writer: MessageWriterOptions
}

/** Counts kept since start, for the metrics. */
export interface RepositoryStats {
  /** Insert statements run (with `writes`: how much coalescing happens). */
  statements: number
  /** Write requests received. */
  writes: number
  /** Messages persisted (an idempotent repeat is not counted again). */
  stored: number
  /** History reads answered from the cache. */
  hits: number
  /** History reads that went to the database. */
  misses: number
  /** Version lookup statements of cached reads (with `hits` + `misses`: how much coalescing happens). */
  lookups: number
}

/**
 * The message-store's one way to its data: every SQL statement (domain/repository/*.ts) and the
 * history cache. Reads of a history go through the cache (HistoryService); every mutation tells
 * the cache what it changed after it committed and before it resolves, so no caller can leave a
 * stale cached history behind. Writes are batched into group-commit statements (MessageWriter).
 * Every method is scoped by tenant.
 */
export class MessageRepository {
  private readonly history: HistoryService
  private readonly writer: MessageWriter

  constructor(
    private readonly db: Database,
    private readonly cache: HistoryBackend | undefined,
    opts: MessageRepositoryOptions,
  ) {
    this.history = new HistoryService(db, cache, opts.history)
    this.writer = new MessageWriter((requests) => this.insert(requests), opts.writer)
  }

  /** Stores messages, idempotent on `id` (a replayed id answers with the stored message, `created` false). */
  write(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    return this.writer.write(tenant, inputs)
  }

  /**
   * Settles messages of a run that failed as failed: a message that is not stored yet is stored marked
   * (`error` true, `properties.state` "partial"); a stored one is marked, unless it is an error already.
   * The run-service calls this for writes it could not confirm (their answer was lost): whichever way such
   * a write went, the message ends up never reported as complete, nor read into a Memory history.
   * Idempotent. The id's primary key orders this against a late copy of the lost write: whichever
   * commits second finds the first.
   */
  async writeFailed(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    // An error message (the run's own report of its failure) is already marked: it is stored as it is.
    const marked = inputs.map((input) =>
      input.error ? input : { ...input, error: true, properties: { ...input.properties, state: 'partial' } },
    )
    const stored = await this.write(tenant, marked)
    const updated = await this.markFailed(
      tenant,
      stored.filter((m) => !m.created).map((m) => m.id),
    )
    return stored.map((m) => {
      const json = updated.get(m.id)
      return json === undefined ? m : { ...m, json }
    })
  }

  /** Marks stored messages as failed (see writeFailed); returns the JSON of those it changed, by id. */
  async markFailed(tenant: string, ids: string[]): Promise<Map<string, string>> {
    const { updated, changes } = await markMessagesFailed(this.db, tenant, ids)
    await this.changed(tenant, changes)
    return updated
  }

  /** The latest messages of a session, error messages excluded, as JSON array text (through the cache). */
  readHistory(tenant: string, q: HistoryQuery): Promise<string | Buffer> {
    return this.history.read(tenant, q)
  }

  listMessages(tenant: string, q: MessagesQuery): Promise<Page> {
    return listMessages(this.db, tenant, q)
  }

  listSessionIds(tenant: string, flowId: string | undefined): Promise<string[]> {
    return listSessionIds(this.db, tenant, flowId)
  }

  /** Session summaries; `metadata`: only the sessions having every one of these pairs. */
  listSessions(tenant: string, q: SessionsQuery, metadata?: Record<string, string>): Promise<Page> {
    return listSessions(this.db, tenant, q, metadata)
  }

  /** Edits a message; returns its JSON. */
  async updateMessage(tenant: string, id: string, update: MessageUpdate): Promise<string> {
    const { json, changes } = await updateMessage(this.db, tenant, id, update)
    await this.changed(tenant, changes)
    return json
  }

  /** Deletes the caller's messages among `ids` (others are ignored). */
  async deleteMessages(tenant: string, ids: string[]): Promise<void> {
    await this.changed(tenant, await deleteMessages(this.db, tenant, ids))
  }

  /** Deletes whole sessions (optionally in one flow); returns the session IDs that had messages. */
  async deleteSessions(tenant: string, sessionIds: string[], flowId?: string): Promise<string[]> {
    const { deletedSessionIds, changes } = await deleteSessions(this.db, tenant, sessionIds, flowId)
    await this.changed(tenant, changes)
    return deletedSessionIds
  }

  /** Renames a session (never merging); returns the moved messages as JSON array text. */
  async renameSession(tenant: string, oldId: string, newId: string, flowId?: string): Promise<string> {
    const { body, changes } = await renameSession(this.db, tenant, oldId, newId, flowId)
    await this.changed(tenant, changes)
    return body
  }

  /**
   * Copies a session (all its messages, or up to and including `upToMessageId`) and its metadata into a new
   * session of the flow, `newSessionId` or a generated UUID; returns the new session's summary JSON.
   */
  async forkSession(
    tenant: string,
    flowId: string,
    sessionId: string,
    opts: { newSessionId?: string | undefined; upToMessageId?: string | undefined },
  ): Promise<string> {
    const newSessionId = opts.newSessionId ?? randomUUID()
    const { json, changes } = await forkSession(this.db, tenant, {
      flowId,
      sessionId,
      newSessionId,
      upToMessageId: opts.upToMessageId,
    })
    // the new session may have had a row (deleted messages) and a cached state: it is out of date now
    await this.changed(tenant, changes)
    return json
  }

  /** The messages with feedback of a flow (or one session), newest first, keyset-paged. */
  listFeedback(tenant: string, q: FeedbackQuery): Promise<Page> {
    return listFeedback(this.db, tenant, q)
  }

  /** Deletes every message of a flow (the flow was deleted). */
  async deleteFlowMessages(tenant: string, flowId: string): Promise<void> {
    await this.changed(tenant, await deleteFlowMessages(this.db, tenant, flowId))
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1')
  }

  /** The history cache in use (`disabled`: none) and whether it is trusted now. */
  cacheState(): { kind: HistoryBackend['kind'] | 'disabled'; status: 'up' | 'down' | 'disabled' } {
    return this.cache
      ? { kind: this.cache.kind, status: this.cache.status() }
      : { kind: 'disabled', status: 'disabled' }
  }

  stats(): RepositoryStats {
    const { statements, writes, stored } = this.writer
    const { hits, misses, lookupStatements: lookups } = this.history
    return { statements, writes, stored, hits, misses, lookups }
  }

  /** Merges metadata into a session that has messages (null removes a key); returns its summary's JSON. */
  patchSessionMetadata(tenant: string, flowId: string, sessionId: string, patch: SessionMetadataPatch) {
    return patchSessionMetadata(this.db, tenant, flowId, sessionId, patch)
  }

  /**
   * A session as NDJSON chunks, read in keyset pages as they are consumed (`{"session": summary}`, then its
   * messages oldest first); undefined when the session has no messages.
   */
  async exportSession(tenant: string, flowId: string, sessionId: string): Promise<AsyncIterable<string> | undefined> {
    const summary = await readSessionSummary(this.db, tenant, flowId, sessionId)
    if (summary === undefined) return undefined
    return this.sessionLines(tenant, { flow_id: flowId, session_id: sessionId }, summary)
  }

  /** Every session of the tenant (all flows) whose metadata has every pair of `filters`, one after another, as exportSession. */
  async *exportSessions(tenant: string, filters: Record<string, string>): AsyncIterable<string> {
    let after: SessionKey | undefined
    for (;;) {
      const sessions = await matchingSessionsPage(this.db, tenant, filters, after, EXPORT_PAGE_SESSIONS)
      for (const session of sessions) yield* this.sessionLines(tenant, session, session.json)
      if (sessions.length < EXPORT_PAGE_SESSIONS) return
      after = sessions.at(-1)
    }
  }

  /** Deletes every session of the tenant (all flows) whose metadata has every pair of `filters`, in batches. */
  async eraseSessions(tenant: string, filters: Record<string, string>): Promise<EraseSessionsResponse> {
    const erased = { deleted_sessions: 0, deleted_messages: 0 }
    for (;;) {
      const batch = await eraseBatch(this.db, tenant, filters, ERASE_BATCH_SESSIONS)
      if (batch.matched === 0) return erased
      await this.changed(tenant, batch.changes)
      erased.deleted_sessions += batch.sessions
      erased.deleted_messages += batch.messages
    }
  }

  /** A session's export lines: its summary, then its messages oldest first, one chunk per page. */
  private async *sessionLines(tenant: string, session: SessionKey, summary: string): AsyncIterable<string> {
    yield `{"session":${summary}}\n`
    let after: MessageKey | undefined
    for (;;) {
      const page = await sessionMessagesPage(this.db, tenant, session, after, EXPORT_PAGE_MESSAGES)
      if (page.length > 0) yield `${page.map((m) => m.json).join('\n')}\n`
      if (page.length < EXPORT_PAGE_MESSAGES) return
      after = page.at(-1)
    }
  }

  /** One insert statement for the writer, and its cache step: appends, and invalidations of replayed ids. */
  private async insert(requests: WriteRequest[]): Promise<InsertResult> {
    const result = await insertMessages(this.db, requests)
    await this.history.afterInsert(result.appends)
    // A replayed id may have committed in an attempt whose answer was lost: its cached history may lack it.
    await Promise.all(result.replayed.map((r) => this.history.afterChange(r.tenant, [r])))
    return result
  }

  /** After a committed edit, delete, rename or mark: the cached states of these sessions are out of date. */
  private changed(tenant: string, changes: SessionChange[]): Promise<void> {
    return this.history.afterChange(tenant, changes)
  }

  /** Full-text search: the tenant's messages holding every word of the query, newest first (keyset-paged). */
  searchMessages(tenant: string, q: SearchQuery): Promise<Page> {
    return searchMessages(this.db, tenant, q)
  }

  /** The tenant's retention default and flow overrides (only `flowId`'s override when given). */
  readRetention(tenant: string, flowId?: string): Promise<TenantRetention> {
    return readRetention(this.db, tenant, flowId)
  }

  /** Sets or (null) removes the tenant's retention default, or one flow's override. */
  writeRetention(tenant: string, flowId: string | undefined, maxIdleSeconds: number | null): Promise<void> {
    return writeRetention(this.db, tenant, flowId, maxIdleSeconds)
  }

  /** Every retention rule of one tenant, or of all (the sweeper's list of work). */
  retentionRules(tenant?: string): Promise<RetentionRule[]> {
    return listRetentionRules(this.db, tenant)
  }

  acquireSweepLease(holder: string, leaseSeconds: number): Promise<boolean> {
    return acquireSweepLease(this.db, holder, leaseSeconds)
  }

  releaseSweepLease(holder: string): Promise<void> {
    return releaseSweepLease(this.db, holder)
  }

  /** Deletes one batch of a rule's expired sessions and drops their cached histories; null: the lease is lost. */
  async sweepRetentionBatch(
    holder: string,
    leaseSeconds: number,
    rule: RetentionRule,
    limit: number,
    after: string | null,
  ): Promise<Omit<SweepBatch, 'changes'> | null> {
    const batch = await sweepBatch(this.db, holder, leaseSeconds, rule, limit, after)
    if (batch === null) return null
    await this.changed(rule.tenant, batch.changes)
    return { sessions: batch.sessions, messages: batch.messages, lastTs: batch.lastTs }
  }

  /** Creates the monthly partitions of `messages` up to a few months ahead (on start, and by every full sweep). */
  ensurePartitions(): Promise<number> {
    return ensurePartitions(this.db)
  }

  /** The partitions of `messages`, oldest first. */
  listPartitions(): Promise<MessagePartition[]> {
    return listPartitions(this.db)
  }

  /**
   * Creates the partitions ahead, drops each past month whose sessions have all expired, and forgets the ids
   * of the dropped ranges; null: the lease is lost.
   */
  async dropExpiredPartitions(
    holder: string,
    leaseSeconds: number,
  ): Promise<{ dropped: MessagePartition[]; messages: number } | null> {
    await ensurePartitions(this.db)
    const dropped: MessagePartition[] = []
    let messages = 0
    for (const part of await listPartitions(this.db)) {
      if (part.kind !== 'month') continue
      if (!part.past) break
      const outcome = await dropPartitionIfExpired(this.db, holder, leaseSeconds, part)
      if (outcome.kind === 'lost') return null
      if (outcome.kind === 'dropped') {
        dropped.push(part)
        messages += outcome.messages
      }
    }
    await forgetDroppedIds(this.db, await listPartitions(this.db))
    return { dropped, messages }
  }

  /** Refreshes the sessions that still meet a dropped partition's range, and drops their cached histories. */
  async repairDroppedPartitions(dropped: MessagePartition[]): Promise<void> {
    for (const part of dropped) {
      for (const { tenant, changes } of await repairDroppedRange(this.db, part.from, part.to)) {
        await this.changed(tenant, changes)
      }
    }
  }
}
