import type { Database, Queryable } from '@session-runtime/db'
import type { SessionChange } from './changes.js'
import { SessionConflictError, SessionNotFoundError } from './errors.js'
import { FEEDBACK_COUNTS, FEEDBACK_GIVEN } from './feedback.js'
import { clearMetadata, moveMetadata } from './metadata-rows.js'
import { withRetry } from './retry.js'

/** A token count summed in numeric, capped to a bigint (session usage, migration 009). */
export const cappedTokens = (sum: string) => `LEAST(coalesce(${sum}, 0), 9223372036854775807)::bigint`

/**
 * Session rows: locking them (in a fixed order), recomputing their summaries (which moves their
 * versions on), and the mutations of whole sessions (delete, rename).
 */

export interface SessionKey {
  flow_id: string
  session_id: string
}

/** Locks the session rows (in a fixed order, so writers never deadlock) and returns the locked ones. */
export async function lockSessions(tx: Queryable, tenant: string, where: string, params: unknown[]) {
  const { rows } = await tx.query<SessionKey & { message_count: string }>(
    `SELECT flow_id, session_id, message_count FROM sessions
     WHERE tenant_id = $1 AND ${where}
     ORDER BY flow_id, session_id FOR UPDATE`,
    [tenant, ...params],
  )
  return rows
}

/** Locks the caller's session rows matching `where` (`$2` is `value`), only those of one flow when `flowId` is given. */
function lockSessionsInFlow(tx: Queryable, tenant: string, where: string, value: unknown, flowId: string | undefined) {
  return flowId === undefined
    ? lockSessions(tx, tenant, where, [value])
    : lockSessions(tx, tenant, `${where} AND flow_id = $3`, [value, flowId])
}

/** Locks the rows of the given sessions (see lockSessions). */
export function lockSessionKeys(tx: Queryable, tenant: string, keys: SessionKey[]) {
  return lockSessions(tx, tenant, '(flow_id, session_id) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))', [
    keys.map((k) => k.flow_id),
    keys.map((k) => k.session_id),
  ])
}

/**
 * Makes sure the session rows exist (a session about to receive messages by a
 * rename or a move), then locks them. Creating the row first means a concurrent
 * first insert into the same session is waited for and seen, never missed.
 */
export async function ensureAndLockSessions(tx: Queryable, tenant: string, keys: SessionKey[]) {
  await tx.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, version)
     SELECT $1, f, s, 0, nextval('session_version_seq') FROM unnest($2::uuid[], $3::text[]) AS k(f, s)
     ORDER BY f, s
     ON CONFLICT (tenant_id, flow_id, session_id) DO NOTHING`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
  return lockSessionKeys(tx, tenant, keys)
}

/** A session's sum of one count of its messages' `properties.usage` (migration 009), capped to a bigint. */
const usageSum = (field: 'input_tokens' | 'output_tokens' | 'total_tokens') =>
  `${cappedTokens(`sum(usage_tokens(m.properties, '${field}'))`)} AS ${field}`

/** Recomputes the summaries of the given sessions (counts, times, last text, feedback, token usage) and moves their versions on. */
export async function refreshSessions(tx: Queryable, tenant: string, keys: SessionKey[]): Promise<SessionChange[]> {
  if (keys.length === 0) return []
  const { rows } = await tx.query<{ flow_id: string; session_id: string; version: string }>(
    `WITH k AS (
       SELECT DISTINCT f AS flow_id, s AS session_id FROM unnest($2::uuid[], $3::text[]) AS k(f, s)
     ),
     agg AS (
       SELECT k.flow_id, k.session_id, x.n, x.first_ts, x.last_ts, f.positive, f.negative,
         x.input_tokens, x.output_tokens, x.total_tokens,
         (SELECT m2.text FROM messages m2
          WHERE m2.tenant_id = $1 AND m2.flow_id = k.flow_id AND m2.session_id = k.session_id
          ORDER BY m2.ts DESC, m2.seq DESC LIMIT 1) AS last_text
       FROM k CROSS JOIN LATERAL (
         SELECT count(*) AS n, min(m.ts) AS first_ts, max(m.ts) AS last_ts,
           ${usageSum('input_tokens')}, ${usageSum('output_tokens')}, ${usageSum('total_tokens')}
         FROM messages m
         WHERE m.tenant_id = $1 AND m.flow_id = k.flow_id AND m.session_id = k.session_id
       ) x CROSS JOIN LATERAL (
         -- the few messages with feedback, through their partial index (migrations/008)
         SELECT ${FEEDBACK_COUNTS} FROM messages m
         WHERE m.tenant_id = $1 AND m.flow_id = k.flow_id AND m.session_id = k.session_id AND ${FEEDBACK_GIVEN}
       ) f
     )
     INSERT INTO sessions AS s (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version,
       positive_feedback_count, negative_feedback_count, input_tokens, output_tokens, total_tokens)
     SELECT $1, flow_id, session_id, n, first_ts, last_ts, last_text, nextval('session_version_seq'), positive, negative,
       input_tokens, output_tokens, total_tokens
     FROM agg ORDER BY flow_id, session_id
     ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE SET
       message_count = excluded.message_count, first_ts = excluded.first_ts, last_ts = excluded.last_ts,
       last_text = excluded.last_text, positive_feedback_count = excluded.positive_feedback_count,
       negative_feedback_count = excluded.negative_feedback_count, input_tokens = excluded.input_tokens,
       output_tokens = excluded.output_tokens, total_tokens = excluded.total_tokens,
       prev_version = s.version, version = nextval('session_version_seq')
     RETURNING flow_id, session_id, version`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
  return rows.map((r) => ({ flowId: r.flow_id, sessionId: r.session_id, version: Number(r.version) }))
}

/** Deletes every message of the given sessions (their rows are refreshed by the caller). */
export async function deleteSessionMessages(tx: Queryable, tenant: string, keys: SessionKey[]) {
  await tx.query(
    `DELETE FROM messages m USING unnest($2::uuid[], $3::text[]) AS k(f, s)
     WHERE m.tenant_id = $1 AND m.flow_id = k.f AND m.session_id = k.s`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
}

/**
 * Deletes whole sessions of the caller (optionally in one flow). Returns the
 * session IDs that had messages, and the changes for the cache.
 */
export async function deleteSessions(
  db: Database,
  tenant: string,
  sessionIds: string[],
  flowId?: string,
): Promise<{ deletedSessionIds: string[]; changes: SessionChange[] }> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await lockSessionsInFlow(tx, tenant, 'session_id = ANY($2::text[])', sessionIds, flowId)
      if (locked.length === 0) return { deletedSessionIds: [], changes: [] }
      await deleteSessionMessages(tx, tenant, locked)
      const changes = await refreshSessions(tx, tenant, locked)
      await clearMetadata(tx, tenant, locked)
      const deletedSessionIds = [...new Set(locked.filter((k) => Number(k.message_count) > 0).map((k) => k.session_id))]
      return { deletedSessionIds, changes }
    }),
  )
}

/**
 * Renames a session atomically: every message of `oldId` in the caller's flows
 * (or in `flowId`) moves to `newId`. Refuses to merge into a session that already
 * has messages in one of those flows.
 */
export async function renameSession(
  db: Database,
  tenant: string,
  oldId: string,
  newId: string,
  flowId?: string,
): Promise<{ body: string; changes: SessionChange[] }> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await lockSessionsInFlow(tx, tenant, 'session_id = $2 AND message_count > 0', oldId, flowId)
      const flows = locked.map((k) => k.flow_id)
      if (flows.length === 0) throw new SessionNotFoundError(`Session ${oldId} not found`)
      const targets = await ensureAndLockSessions(
        tx,
        tenant,
        flows.map((f) => ({ flow_id: f, session_id: newId })),
      )
      const taken = targets.some((k) => Number(k.message_count) > 0)
      if (taken || oldId === newId) {
        throw new SessionConflictError(`Session ${newId} already has messages in this flow; rename would merge them`)
      }
      const { rows } = await tx.query<{ json: string }>(
        `WITH u AS (
           UPDATE messages m SET session_id = $3
           WHERE m.tenant_id = $1 AND m.session_id = $2 AND m.flow_id = ANY($4::uuid[])
           RETURNING message_json(m) AS json, m.ts, m.seq
         )
         SELECT json FROM u ORDER BY ts, seq`,
        [tenant, oldId, newId, flows],
      )
      await moveMetadata(tx, tenant, oldId, newId, flows)
      const keys = flows.flatMap((f) => [
        { flow_id: f, session_id: oldId },
        { flow_id: f, session_id: newId },
      ])
      const changes = await refreshSessions(tx, tenant, keys)
      return { body: `[${rows.map((r) => r.json).join(',')}]`, changes }
    }),
  )
}
