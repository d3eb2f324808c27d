import type { Queryable } from '@session-runtime/db'
import type { SessionKey } from '../version-lookups.js'
import { HISTORY_COLUMNS, type HistoryEntry } from './changes.js'

/** Reads of a session's history: the cache fill, and the one-row JSON read for reads that do not fill. */

/** A session's latest non-error messages (newest first) and its version, read in one snapshot. */
export interface HistorySnapshot {
  version: number
  /** Newest first. */
  entries: HistoryEntry[]
}

/**
 * The session's current version (0: no such session). A cached history is served only when it is at this
 * version: one primary-key lookup that makes the cache safe whatever happened to it (history-backend.ts).
 */
export async function readVersion(db: Queryable, tenant: string, flowId: string, sessionId: string): Promise<number> {
  const { rows } = await db.query<{ version: string }>(
    'SELECT version FROM sessions WHERE tenant_id = $1 AND flow_id = $2 AND session_id = $3',
    [tenant, flowId, sessionId],
  )
  return Number(rows[0]?.version ?? 0)
}

/**
 * The current versions of several sessions (0: no such session), in the order asked: the coalesced form
 * of readVersion (domain/version-lookups.ts), one primary-key probe per session in one statement.
 */
export async function readVersions(db: Queryable, keys: SessionKey[]): Promise<number[]> {
  if (keys.length === 1) {
    const [key] = keys as [SessionKey]
    return [await readVersion(db, key.tenant, key.flowId, key.sessionId)]
  }
  const { rows } = await db.query<{ version: string }>(
    `SELECT coalesce(s.version, 0) AS version
     FROM unnest($1::text[], $2::uuid[], $3::text[]) WITH ORDINALITY AS k(tenant_id, flow_id, session_id, i)
     LEFT JOIN sessions s ON s.tenant_id = k.tenant_id COLLATE "C" AND s.flow_id = k.flow_id
       AND s.session_id = k.session_id COLLATE "C"
     ORDER BY k.i`,
    [keys.map((k) => k.tenant), keys.map((k) => k.flowId), keys.map((k) => k.sessionId)],
  )
  return rows.map((row) => Number(row.version))
}

/** For filling the cache: the newest `limit` messages with their sort keys, and the session's version. */
export async function readHistory(
  db: Queryable,
  tenant: string,
  flowId: string,
  sessionId: string,
  limit: number,
): Promise<HistorySnapshot> {
  const { rows } = await db.query<{
    version: string
    json: string | null
    sort_key: string
    sender: string
    sender_name: string
  }>(
    `SELECT v.version, h.json, h.sort_key, h.sender, h.sender_name
     FROM (SELECT coalesce((SELECT version FROM sessions
             WHERE tenant_id = $1 AND flow_id = $2 AND session_id = $3), 0) AS version) v
     LEFT JOIN LATERAL (
       SELECT ${HISTORY_COLUMNS}, m.ts, m.seq FROM messages m
       WHERE m.tenant_id = $1 AND m.flow_id = $2 AND m.session_id = $3 AND NOT m.error
       ORDER BY m.ts DESC, m.seq DESC LIMIT $4
     ) h ON true
     ORDER BY h.ts DESC, h.seq DESC`,
    [tenant, flowId, sessionId, limit],
  )
  const version = Number(rows[0]?.version ?? 0)
  const entries: HistoryEntry[] = []
  for (const row of rows) {
    if (row.json !== null) {
      entries.push({ json: row.json, sortKey: row.sort_key, sender: row.sender, senderName: row.sender_name })
    }
  }
  return { version, entries }
}

/**
 * The latest `limit` non-error messages of a session as one JSON array text,
 * oldest first (or newest first), built by Postgres. For reads that do not fill
 * the cache: no version, sort keys or sender columns, and one row instead of
 * `limit` (the uncached read costs about half as much; see docs/benchmarks.md).
 */
export async function readHistoryJson(
  db: Queryable,
  tenant: string,
  flowId: string,
  sessionId: string,
  limit: number,
  order: 'ASC' | 'DESC',
  filter: { sender?: string | undefined; senderName?: string | undefined } = {},
): Promise<string> {
  const params: unknown[] = [tenant, flowId, sessionId, limit]
  let extra = ''
  if (filter.sender !== undefined) {
    params.push(filter.sender)
    extra += ` AND m.sender = $${params.length}`
  }
  if (filter.senderName !== undefined) {
    params.push(filter.senderName)
    extra += ` AND m.sender_name = $${params.length}`
  }
  const dir = order === 'DESC' ? 'DESC' : 'ASC'
  const { rows } = await db.query<{ body: string }>(
    `SELECT '[' || coalesce(string_agg(h.json, ',' ORDER BY h.ts ${dir}, h.seq ${dir}), '') || ']' AS body FROM (
       SELECT message_json(m) AS json, m.ts, m.seq FROM messages m
       WHERE m.tenant_id = $1 AND m.flow_id = $2 AND m.session_id = $3 AND NOT m.error${extra}
       ORDER BY m.ts DESC, m.seq DESC LIMIT $4
     ) h`,
    params,
  )
  return rows[0]?.body ?? '[]'
}
