import type { Database, Queryable } from '@session-runtime/db'
import type { SessionMetadataPatch } from '@session-runtime/schemas'
import type { SessionChange } from './changes.js'
import { MetadataLimitError, SessionNotFoundError } from './errors.js'
import { clearMetadata } from './metadata-rows.js'
import { withRetry } from './retry.js'
import { deleteSessionMessages, lockSessions, refreshSessions, type SessionKey } from './sessions.js'

/**
 * Session metadata (at most 16 string pairs per session row), and what is done with sessions chosen by it:
 * export (read in keyset pages, so memory stays flat whatever the size) and erase (in bounded batches).
 * Every statement is scoped by tenant.
 */

/** A timestamp as the API shows it: ISO-8601 UTC with microseconds. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

/** The session summary of the `sessions` row `s` (GET /api/v1/monitor/sessions shape) as compact JSON text. */
export const sessionSummaryJson = (s: string) =>
  // row_to_json writes compact JSON (json_build_object would write `"key" : value`)
  `(SELECT row_to_json(r) FROM (SELECT ${s}.session_id, ${s}.flow_id, ${s}.message_count,
     ${iso(`${s}.first_ts`)} AS first_timestamp, ${iso(`${s}.last_ts`)} AS last_timestamp, ${s}.last_text,
     ${s}.metadata, ${s}.positive_feedback_count, ${s}.negative_feedback_count,
     (SELECT row_to_json(u) FROM (SELECT ${s}.input_tokens, ${s}.output_tokens, ${s}.total_tokens) u) AS usage) r)::text`

/** Metadata filters (`metadata.<key>=<value>`, all must match) as a JSON containment argument. */
export const metadataContainment = (filters: Record<string, string>) => JSON.stringify(filters)

/**
 * Merges `patch` into the metadata of a session that has messages (null removes a key) and answers its
 * summary. SessionNotFoundError when it has none; MetadataLimitError past 16 keys (nothing changes).
 * Metadata is not part of a history: the session's version (the cache's) does not move.
 */
export function patchSessionMetadata(
  db: Database,
  tenant: string,
  flowId: string,
  sessionId: string,
  patch: SessionMetadataPatch,
): Promise<string> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows } = await tx.query<{ merged: unknown; found: boolean }>(
        `SELECT session_metadata_merge(metadata, $4::jsonb) AS merged, true AS found FROM sessions
         WHERE tenant_id = $1 AND flow_id = $2 AND session_id = $3 AND message_count > 0 FOR UPDATE`,
        [tenant, flowId, sessionId, JSON.stringify(patch)],
      )
      const row = rows[0]
      if (!row) throw new SessionNotFoundError(`Session ${sessionId} not found in flow ${flowId}`)
      if (row.merged === null) throw new MetadataLimitError('A session holds at most 16 metadata keys')
      const updated = await tx.query<{ json: string }>(
        `UPDATE sessions s SET metadata = session_metadata_merge(s.metadata, $4::jsonb)
         WHERE tenant_id = $1 AND flow_id = $2 AND session_id = $3
         RETURNING ${sessionSummaryJson('s')} AS json`,
        [tenant, flowId, sessionId, JSON.stringify(patch)],
      )
      return (updated.rows[0] as { json: string }).json
    }),
  )
}

/** The summary of one session that has messages, or undefined. */
export async function readSessionSummary(db: Queryable, tenant: string, flowId: string, sessionId: string) {
  const { rows } = await db.query<{ json: string }>(
    `SELECT ${sessionSummaryJson('s')} AS json FROM sessions s
     WHERE s.tenant_id = $1 AND s.flow_id = $2 AND s.session_id = $3 AND s.message_count > 0`,
    [tenant, flowId, sessionId],
  )
  return rows[0]?.json
}

/** Where a keyset page of a session's messages starts: after this (timestamp, sequence). */
export interface MessageKey {
  t: string
  s: string
}

/** One page of a session's messages, oldest first, after `after` (monitor message shape, JSON text each). */
export async function sessionMessagesPage(
  db: Queryable,
  tenant: string,
  session: SessionKey,
  after: MessageKey | undefined,
  limit: number,
): Promise<Array<MessageKey & { json: string }>> {
  const params: unknown[] = [tenant, session.flow_id, session.session_id, limit]
  let keyset = ''
  if (after) {
    params.push(after.t, after.s)
    keyset = 'AND (m.ts, m.seq) > ($5::timestamptz, $6::bigint)'
  }
  const { rows } = await db.query<MessageKey & { json: string }>(
    `SELECT message_json(m) AS json, ${iso('m.ts')} AS t, m.seq::text AS s FROM messages m
     WHERE m.tenant_id = $1 AND m.flow_id = $2 AND m.session_id = $3 ${keyset}
     ORDER BY m.ts, m.seq LIMIT $4`,
    params,
  )
  return rows
}

/** One page of the tenant's sessions (every flow) whose metadata contains `filters`, after `after`. */
export async function matchingSessionsPage(
  db: Queryable,
  tenant: string,
  filters: Record<string, string>,
  after: SessionKey | undefined,
  limit: number,
): Promise<Array<SessionKey & { json: string }>> {
  const params: unknown[] = [tenant, metadataContainment(filters), limit]
  let keyset = ''
  if (after) {
    params.push(after.flow_id, after.session_id)
    keyset = 'AND (s.flow_id, s.session_id) > ($4::uuid, $5)'
  }
  const { rows } = await db.query<SessionKey & { json: string }>(
    `SELECT s.flow_id::text AS flow_id, s.session_id, ${sessionSummaryJson('s')} AS json FROM sessions s
     WHERE s.tenant_id = $1 AND s.metadata @> $2::jsonb AND s.message_count > 0 ${keyset}
     ORDER BY s.flow_id, s.session_id LIMIT $3`,
    params,
  )
  return rows
}

/**
 * Deletes one batch (at most `limit` sessions) of the tenant's sessions whose metadata contains `filters`,
 * in every flow: their messages go, their metadata is cleared (so they match no more) and their rows stay,
 * at new versions. `matched` 0 means none is left.
 */
export function eraseBatch(
  db: Database,
  tenant: string,
  filters: Record<string, string>,
  limit: number,
): Promise<{ matched: number; sessions: number; messages: number; changes: SessionChange[] }> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await lockSessions(
        tx,
        tenant,
        `(flow_id, session_id) IN (SELECT flow_id, session_id FROM sessions
           WHERE tenant_id = $1 AND metadata @> $2::jsonb ORDER BY flow_id, session_id LIMIT $3)
         AND metadata @> $2::jsonb`,
        [metadataContainment(filters), limit],
      )
      if (locked.length === 0) return { matched: 0, sessions: 0, messages: 0, changes: [] }
      const withMessages = locked.filter((k) => Number(k.message_count) > 0)
      await deleteSessionMessages(tx, tenant, withMessages)
      const changes = await refreshSessions(tx, tenant, withMessages)
      await clearMetadata(tx, tenant, locked)
      const messages = withMessages.reduce((n, k) => n + Number(k.message_count), 0)
      return { matched: locked.length, sessions: withMessages.length, messages, changes }
    }),
  )
}
