import type { Database } from '@session-runtime/db'
import type { SessionChange } from './changes.js'
import { ForkPointError, SessionConflictError, SessionNotFoundError } from './errors.js'
import { withRetry } from './retry.js'
import { sessionSummaryJson } from './session-lifecycle.js'
import { ensureAndLockSessions, refreshSessions } from './sessions.js'

/** What a fork copies: a session of a flow into a new session of the same flow, up to a message or whole. */
export interface ForkRequest {
  flowId: string
  sessionId: string
  newSessionId: string
  /** The last message copied (a message of the session); every message when undefined. */
  upToMessageId?: string | undefined
}

/**
 * POST /api/v1/monitor/sessions/{session_id}/fork: copies a session's messages (all, or up to and including one)
 * and its metadata into a new session of the same flow, in one transaction. The copies get new ids and keep
 * everything else, their timestamps too; their sequence numbers are drawn in the original's order, so the
 * fork's history reads in the same order (ties of timestamps included). The original is not changed.
 *
 * Both session rows are locked first, in the writers' order (ensureAndLockSessions): a write to the original
 * waits for the copy or comes after it, and a write to the new session (or another fork to it) is waited for
 * and seen. SessionNotFoundError when the session has no messages, SessionConflictError when the new one has
 * some (or is the same session), ForkPointError when `upToMessageId` is no message of the session.
 */
export function forkSession(
  db: Database,
  tenant: string,
  fork: ForkRequest,
): Promise<{ json: string; changes: SessionChange[] }> {
  const source = { flow_id: fork.flowId, session_id: fork.sessionId }
  const target = { flow_id: fork.flowId, session_id: fork.newSessionId }
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await ensureAndLockSessions(tx, tenant, [source, target])
      const count = (sessionId: string) => Number(locked.find((k) => k.session_id === sessionId)?.message_count ?? 0)
      if (count(fork.sessionId) === 0) {
        throw new SessionNotFoundError(`Session ${fork.sessionId} not found in flow ${fork.flowId}`)
      }
      if (fork.newSessionId === fork.sessionId || count(fork.newSessionId) > 0) {
        throw new SessionConflictError(`Session ${fork.newSessionId} already exists in this flow; a fork never merges`)
      }
      const params: unknown[] = [tenant, fork.flowId, fork.sessionId, fork.newSessionId]
      let upTo = ''
      if (fork.upToMessageId !== undefined) {
        const { rows } = await tx.query(
          'SELECT 1 FROM messages WHERE tenant_id = $1 AND flow_id = $2 AND session_id = $3 AND id = $4',
          [tenant, fork.flowId, fork.sessionId, fork.upToMessageId],
        )
        if (rows.length === 0) {
          throw new ForkPointError(`Message ${fork.upToMessageId} is not a message of session ${fork.sessionId}`)
        }
        params.push(fork.upToMessageId)
        upTo = 'AND (m.ts, m.seq) <= (SELECT p.ts, p.seq FROM messages p WHERE p.tenant_id = $1 AND p.id = $5)'
      }
      // INSERT … SELECT … ORDER BY draws the sequence number (seq) of each row in that order. The copies' ids go
      // into the id ledger as every stored message's do (migrations/007).
      await tx.query(
        `WITH copies AS (
           INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text, files, error, edit,
             properties, category, content_blocks, context_id)
           SELECT gen_random_uuid(), m.tenant_id, m.flow_id, $4, m.ts, m.sender, m.sender_name, m.text, m.files, m.error,
             m.edit, m.properties, m.category, m.content_blocks, m.context_id
           FROM messages m
           WHERE m.tenant_id = $1 AND m.flow_id = $2 AND m.session_id = $3 ${upTo}
           ORDER BY m.ts, m.seq
           RETURNING tenant_id, id, ts)
         INSERT INTO message_ids (tenant_id, id, ts) SELECT tenant_id, id, ts FROM copies`,
        params,
      )
      await tx.query(
        `UPDATE sessions n SET metadata = o.metadata FROM sessions o
         WHERE o.tenant_id = $1 AND o.flow_id = $2 AND o.session_id = $3
           AND n.tenant_id = $1 AND n.flow_id = $2 AND n.session_id = $4`,
        [tenant, fork.flowId, fork.sessionId, fork.newSessionId],
      )
      const changes = await refreshSessions(tx, tenant, [target])
      const { rows } = await tx.query<{ json: string }>(
        `SELECT ${sessionSummaryJson('s')} AS json FROM sessions s
         WHERE s.tenant_id = $1 AND s.flow_id = $2 AND s.session_id = $3`,
        [tenant, fork.flowId, fork.newSessionId],
      )
      return { json: (rows[0] as { json: string }).json, changes }
    }),
  )
}
