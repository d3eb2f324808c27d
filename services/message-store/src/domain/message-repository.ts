import { type Database, type Queryable, RETRYABLE_SQLSTATES } from '@session-runtime/db'
import type { MessageInput, MessagesQuery, MessageUpdate, SessionsQuery } from '@session-runtime/schemas'
import {
  decodeCursor,
  encodeCursor,
  InvalidCursorError,
  isCursorBigint,
  isCursorTimestamp,
  isCursorUuid,
} from './cursor.js'

/**
 * All SQL of the message-store. Every statement is scoped by tenant; nothing is
 * keyed by session ID alone. Messages come back as JSON text built by Postgres
 * (`message_json`), so the hot paths splice strings instead of re-serializing.
 */

/** A session whose state changed, with its new version (for the history cache). */
export interface SessionChange {
  flowId: string
  sessionId: string
  version: number
}

/** Messages appended to one session by one write. */
export interface SessionAppend extends SessionChange {
  tenant: string
  /** The session's version just before this write (0: the session had no row). */
  prevVersion: number
  /** The appended non-error messages, in order. */
  entries: HistoryEntry[]
}

/** One message as the history cache keeps it. */
export interface HistoryEntry {
  json: string
  /** Sorts like (timestamp, seq); fixed width. */
  sortKey: string
  sender: string
  senderName: string
}

/** One caller's messages; a statement may carry several callers' writes. */
export interface WriteRequest {
  tenant: string
  inputs: MessageInput[]
}

/** A stored message: JSON of the input's message (stored earlier if its id was replayed). */
export interface StoredMessage {
  id: string
  json: string
  created: boolean
}

export interface InsertResult {
  /** Per request, in order: its messages in input order, or why it was refused. */
  results: Array<StoredMessage[] | MessageIdConflictError>
  /** Per session touched by the statement. */
  appends: SessionAppend[]
  /**
   * The sessions of replayed ids, at their current version: an earlier attempt may have committed
   * without being answered (nor the cache updated), so their cached histories must be invalidated.
   */
  replayed: Array<SessionChange & { tenant: string }>
  /** Rows the statement inserted (replayed ids are not inserted again). */
  inserted: number
}

export class MessageIdConflictError extends Error {
  constructor(readonly ids: string[]) {
    super(`Message id already used by another owner: ${ids.join(', ')}`)
  }
}
export class SessionNotFoundError extends Error {}
export class SessionConflictError extends Error {}
export class MessageNotFoundError extends Error {}

const HISTORY_COLUMNS = `message_json(m) AS json, message_sort_key(m.ts, m.seq) AS sort_key, m.sender, m.sender_name`

const INSERT_SQL = `
WITH input AS (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
    tenant_id text, id uuid, flow_id uuid, session_id text, sender text, sender_name text, text text,
    files jsonb, error boolean, edit boolean, properties jsonb, category text,
    content_blocks jsonb, context_id text)) WITH ORDINALITY AS x(
    tenant_id, id, flow_id, session_id, sender, sender_name, text, files, error, edit, properties,
    category, content_blocks, context_id, ord)
),
ins AS (
  INSERT INTO messages AS m (id, tenant_id, flow_id, session_id, sender, sender_name, text,
    files, error, edit, properties, category, content_blocks, context_id)
  SELECT id, tenant_id, flow_id, session_id, sender, sender_name, text,
    coalesce(files, '[]'), coalesce(error, false), coalesce(edit, false), coalesce(properties, '{}'),
    coalesce(category, CASE WHEN coalesce(error, false) THEN 'error' ELSE 'message' END),
    coalesce(content_blocks, '[]'), coalesce(context_id, '')
  FROM input ORDER BY ord
  ON CONFLICT (id) DO NOTHING
  RETURNING m.tenant_id, m.id, m.flow_id, m.session_id, m.ts, m.seq, m.text, m.error, ${HISTORY_COLUMNS}
),
agg AS (
  SELECT tenant_id, flow_id, session_id, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts,
    (array_agg(text ORDER BY ts DESC, seq DESC))[1] AS last_text
  FROM ins GROUP BY tenant_id, flow_id, session_id
),
up AS (
  INSERT INTO sessions AS s (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
  SELECT tenant_id, flow_id, session_id, n, first_ts, last_ts, last_text, nextval('session_version_seq')
  FROM agg ORDER BY tenant_id, flow_id, session_id
  ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE SET
    message_count = s.message_count + excluded.message_count,
    first_ts = least(s.first_ts, excluded.first_ts),
    last_ts = greatest(s.last_ts, excluded.last_ts),
    last_text = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_text ELSE s.last_text END,
    prev_version = s.version,
    version = nextval('session_version_seq')
  RETURNING tenant_id, flow_id, session_id, version, prev_version
)
SELECT i.tenant_id, i.id, i.flow_id, i.session_id, i.error, i.json, i.sort_key, i.sender, i.sender_name,
  u.version, u.prev_version
FROM ins i JOIN up u ON u.tenant_id = i.tenant_id AND u.flow_id = i.flow_id AND u.session_id = i.session_id
ORDER BY i.ts, i.seq`

interface InsertRow {
  tenant_id: string
  id: string
  flow_id: string
  session_id: string
  error: boolean
  json: string
  sort_key: string
  sender: string
  sender_name: string
  version: string
  prev_version: string
}

/** Retries a transaction that lost a deadlock or serialization race. */
async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (attempt >= 3 || !code || !RETRYABLE_SQLSTATES.has(code)) throw err
    }
  }
}

/**
 * Stores the messages of one or more requests in one statement; idempotent on
 * `id`: a replayed id is not stored again and answers with the stored message. A
 * request naming an id that another tenant owns is refused (the others are not).
 */
export async function insertMessages(db: Database, requests: WriteRequest[]): Promise<InsertResult> {
  const rowsIn = requests.flatMap((r) => r.inputs.map((input) => ({ ...input, tenant_id: r.tenant })))
  const { rows } = await withRetry(() => db.query<InsertRow>(INSERT_SQL, [JSON.stringify(rowsIn)]))
  const created = new Map<string, InsertRow>()
  const appends = new Map<string, SessionAppend>()
  for (const row of rows) {
    created.set(`${row.tenant_id}\u0000${row.id}`, row)
    const key = `${row.tenant_id}\u0000${row.flow_id}\u0000${row.session_id}`
    let append = appends.get(key)
    if (!append) {
      append = {
        tenant: row.tenant_id,
        flowId: row.flow_id,
        sessionId: row.session_id,
        version: Number(row.version),
        prevVersion: Number(row.prev_version),
        entries: [],
      }
      appends.set(key, append)
    }
    if (!row.error) {
      append.entries.push({ json: row.json, sortKey: row.sort_key, sender: row.sender, senderName: row.sender_name })
    }
  }
  const replayedSessions: InsertResult['replayed'] = []
  const results = await Promise.all(
    requests.map(async ({ tenant, inputs }) => {
      const byId = new Map<string, StoredMessage>()
      for (const input of inputs) {
        const row = created.get(`${tenant}\u0000${input.id}`)
        // The same id twice in one statement is stored once: only its first occurrence is "created".
        if (row && !byId.has(input.id)) {
          created.delete(`${tenant}\u0000${input.id}`)
          byId.set(input.id, { id: input.id, json: row.json, created: true })
        }
      }
      const replayed = inputs.filter((input) => !byId.has(input.id)).map((input) => input.id)
      if (replayed.length > 0) {
        const existing = await db.query<{
          id: string
          json: string
          flow_id: string
          session_id: string
          version: string | null
        }>(
          `SELECT m.id, message_json(m) AS json, m.flow_id, m.session_id, s.version FROM messages m
           LEFT JOIN sessions s ON s.tenant_id = m.tenant_id AND s.flow_id = m.flow_id AND s.session_id = m.session_id
           WHERE m.tenant_id = $1 AND m.id = ANY($2::uuid[])`,
          [tenant, replayed],
        )
        for (const row of existing.rows) {
          byId.set(row.id, { id: row.id, json: row.json, created: false })
          if (row.version !== null) {
            replayedSessions.push({
              tenant,
              flowId: row.flow_id,
              sessionId: row.session_id,
              version: Number(row.version),
            })
          }
        }
        const foreign = replayed.filter((id) => !byId.has(id))
        if (foreign.length > 0) return new MessageIdConflictError(foreign)
      }
      return inputs.map((input) => byId.get(input.id) as StoredMessage)
    }),
  )
  return { results, appends: [...appends.values()], inserted: rows.length, replayed: replayedSessions }
}

/** A session's latest non-error messages (newest first) and its version, read in one snapshot. */
export interface HistorySnapshot {
  version: number
  /** Newest first. */
  entries: HistoryEntry[]
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

const SORT_COLUMN = { timestamp: null, sender: 'sender', sender_name: 'sender_name', session_id: 'session_id' } as const
const CURSOR_FIELDS = ['o', 'd', 'v', 't', 's'] as const

export interface Page {
  /** JSON array text. */
  body: string
  nextCursor: string | undefined
}

/** GET /api/v1/monitor/messages: filters, ordering, offset and keyset cursor. */
export async function listMessages(db: Queryable, tenant: string, q: MessagesQuery): Promise<Page> {
  const params: unknown[] = [tenant]
  const where = ['m.tenant_id = $1']
  const add = (sql: string, value: unknown) => {
    params.push(value)
    where.push(sql.replace('?', `$${params.length}`))
  }
  if (q.flow_id !== undefined) add('m.flow_id = ?', q.flow_id)
  if (q.session_id !== undefined) add('m.session_id = ?', q.session_id)
  if (q.sender !== undefined) add('m.sender = ?', q.sender)
  if (q.sender_name !== undefined) add('m.sender_name = ?', q.sender_name)
  const column = SORT_COLUMN[q.order_by]
  const dir = q.order === 'DESC' ? 'DESC' : 'ASC'
  const cmp = dir === 'DESC' ? '<' : '>'
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor, CURSOR_FIELDS, { o: q.order_by, d: dir }, ['v'])
    if (!isCursorBigint(c.s) || !isCursorTimestamp(c.t) || (column !== null && c.v === null)) {
      throw new InvalidCursorError('Malformed cursor')
    }
    params.push(c.t, c.s)
    const t = `$${params.length - 1}::timestamptz`
    const s = `$${params.length}::bigint`
    if (column) {
      params.push(c.v)
      where.push(`(m.${column}, m.ts, m.seq) ${cmp} ($${params.length}, ${t}, ${s})`)
    } else {
      where.push(`(m.ts, m.seq) ${cmp} (${t}, ${s})`)
    }
  }
  const order = [column ? `m.${column} ${dir}` : '', `m.ts ${dir}`, `m.seq ${dir}`].filter(Boolean).join(', ')
  params.push(q.limit + 1, q.offset)
  // The page's rows are chosen first and only they are turned into JSON: were the planner to sort a whole
  // flow's (or tenant's) messages — it does with statistics that lag a fast-growing table — it would
  // otherwise build the JSON of every one of them before the sort (seconds at 80,000 messages; the soak).
  const { rows } = await db.query<{ json: string; t: string; s: string; v: string | null }>(
    `SELECT message_json(m) AS json, ${iso('m.ts')} AS t,
       m.seq::text AS s, ${column ? `m.${column}` : 'NULL'} AS v
     FROM (
       SELECT m.id FROM messages m WHERE ${where.join(' AND ')}
       ORDER BY ${order} LIMIT $${params.length - 1} OFFSET $${params.length}
     ) page JOIN messages m ON m.id = page.id
     ORDER BY ${order}`,
    params,
  )
  return toPage(rows, q.limit, (last) => ({ o: q.order_by, d: dir, v: last.v, t: last.t, s: last.s }))
}

/**
 * A page from `limit` + 1 rows: the JSON array of the first `limit`, and a cursor
 * naming the last of them if and only if more rows follow.
 */
function toPage<R extends { json: string }>(
  rows: R[],
  limit: number,
  cursorOf: (last: R) => Record<string, string | null>,
): Page {
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return {
    body: `[${page.map((r) => r.json).join(',')}]`,
    nextCursor: rows.length > limit && last ? encodeCursor(cursorOf(last)) : undefined,
  }
}

/** A timestamp as the API shows it: ISO-8601 UTC with microseconds. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

const MAX_DISTINCT_SESSIONS = 10_000

/** GET /api/v1/monitor/messages/sessions: distinct session IDs (bounded). */
export async function listSessionIds(db: Queryable, tenant: string, flowId: string | undefined): Promise<string[]> {
  const params: unknown[] = [tenant, MAX_DISTINCT_SESSIONS]
  let flow = ''
  if (flowId !== undefined) {
    params.push(flowId)
    flow = ' AND flow_id = $3'
  }
  const { rows } = await db.query<{ session_id: string }>(
    `SELECT DISTINCT session_id FROM sessions WHERE tenant_id = $1 AND message_count > 0${flow}
     ORDER BY session_id LIMIT $2`,
    params,
  )
  return rows.map((r) => r.session_id)
}

const SESSION_CURSOR_FIELDS = ['t', 's', 'f'] as const

/** GET /api/v1/monitor/sessions: summaries, most recently active first. */
export async function listSessions(db: Queryable, tenant: string, q: SessionsQuery): Promise<Page> {
  const params: unknown[] = [tenant]
  const where = ['tenant_id = $1', 'message_count > 0']
  if (q.flow_id !== undefined) {
    params.push(q.flow_id)
    where.push(`flow_id = $${params.length}`)
  }
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor, SESSION_CURSOR_FIELDS)
    if (!isCursorTimestamp(c.t) || !isCursorUuid(c.f)) throw new InvalidCursorError('Malformed cursor')
    params.push(c.t, c.s, c.f)
    const [t, s, f] = [params.length - 2, params.length - 1, params.length].map((i) => `$${i}`)
    where.push(
      `(last_ts < ${t}::timestamptz OR (last_ts = ${t}::timestamptz AND (session_id > ${s} OR (session_id = ${s} AND flow_id > ${f}::uuid))))`,
    )
  }
  params.push(q.limit + 1)
  const { rows } = await db.query<{ json: string; t: string; s: string; f: string }>(
    // row_to_json writes compact JSON (json_build_object would write `"key" : value`)
    `SELECT (SELECT row_to_json(r) FROM (SELECT session_id, flow_id, message_count,
        ${iso('first_ts')} AS first_timestamp, ${iso('last_ts')} AS last_timestamp, last_text) r)::text AS json,
       ${iso('last_ts')} AS t, session_id AS s, flow_id::text AS f
     FROM sessions WHERE ${where.join(' AND ')}
     ORDER BY last_ts DESC, session_id ASC, flow_id ASC LIMIT $${params.length}`,
    params,
  )
  return toPage(rows, q.limit, (last) => ({ t: last.t, s: last.s, f: last.f }))
}

interface SessionKey {
  flow_id: string
  session_id: string
}

/** Locks the session rows (in a fixed order, so writers never deadlock) and returns the locked ones. */
async function lockSessions(tx: Queryable, tenant: string, where: string, params: unknown[]) {
  const { rows } = await tx.query<SessionKey & { message_count: string }>(
    `SELECT flow_id, session_id, message_count FROM sessions
     WHERE tenant_id = $1 AND ${where}
     ORDER BY flow_id, session_id FOR UPDATE`,
    [tenant, ...params],
  )
  return rows
}

/**
 * Makes sure the session rows exist (a session about to receive messages by a
 * rename or a move), then locks them. Creating the row first means a concurrent
 * first insert into the same session is waited for and seen, never missed.
 */
async function ensureAndLockSessions(tx: Queryable, tenant: string, keys: SessionKey[]) {
  await tx.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, version)
     SELECT $1, f, s, 0, nextval('session_version_seq') FROM unnest($2::uuid[], $3::text[]) AS k(f, s)
     ORDER BY f, s
     ON CONFLICT (tenant_id, flow_id, session_id) DO NOTHING`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
  return lockSessions(tx, tenant, '(flow_id, session_id) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))', [
    keys.map((k) => k.flow_id),
    keys.map((k) => k.session_id),
  ])
}

/** Recomputes the summaries of the given sessions and moves their versions on. */
async function refreshSessions(tx: Queryable, tenant: string, keys: SessionKey[]): Promise<SessionChange[]> {
  if (keys.length === 0) return []
  const { rows } = await tx.query<{ flow_id: string; session_id: string; version: string }>(
    `WITH k AS (
       SELECT DISTINCT f AS flow_id, s AS session_id FROM unnest($2::uuid[], $3::text[]) AS k(f, s)
     ),
     agg AS (
       SELECT k.flow_id, k.session_id, x.n, x.first_ts, x.last_ts,
         (SELECT m2.text FROM messages m2
          WHERE m2.tenant_id = $1 AND m2.flow_id = k.flow_id AND m2.session_id = k.session_id
          ORDER BY m2.ts DESC, m2.seq DESC LIMIT 1) AS last_text
       FROM k CROSS JOIN LATERAL (
         SELECT count(*) AS n, min(m.ts) AS first_ts, max(m.ts) AS last_ts FROM messages m
         WHERE m.tenant_id = $1 AND m.flow_id = k.flow_id AND m.session_id = k.session_id
       ) x
     )
     INSERT INTO sessions AS s (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT $1, flow_id, session_id, n, first_ts, last_ts, last_text, nextval('session_version_seq')
     FROM agg ORDER BY flow_id, session_id
     ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE SET
       message_count = excluded.message_count, first_ts = excluded.first_ts, last_ts = excluded.last_ts,
       last_text = excluded.last_text, prev_version = s.version, version = nextval('session_version_seq')
     RETURNING flow_id, session_id, version`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
  return rows.map((r) => ({ flowId: r.flow_id, sessionId: r.session_id, version: Number(r.version) }))
}

/** DELETE /api/v1/monitor/messages: deletes the caller's messages among `ids`. */
export async function deleteMessages(db: Database, tenant: string, ids: string[]): Promise<SessionChange[]> {
  if (ids.length === 0) return []
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: keys } = await tx.query<SessionKey>(
        'SELECT DISTINCT flow_id, session_id FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[])',
        [tenant, ids],
      )
      if (keys.length === 0) return []
      await lockSessions(tx, tenant, '(flow_id, session_id) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))', [
        keys.map((k) => k.flow_id),
        keys.map((k) => k.session_id),
      ])
      const { rows: deleted } = await tx.query<SessionKey>(
        'DELETE FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[]) RETURNING flow_id, session_id',
        [tenant, ids],
      )
      return refreshSessions(tx, tenant, [...keys, ...deleted])
    }),
  )
}

/**
 * Marks the caller's messages among `ids` as failed: `error` true and `properties.state` "partial" (a run that
 * failed left them; see MessageWriter.writeFailed). Messages with `error` set are left as they are. Returns the
 * JSON of the messages it changed, by id, and the changes for the cache (they leave the Memory history).
 */
export async function markMessagesFailed(
  db: Database,
  tenant: string,
  ids: string[],
): Promise<{ updated: Map<string, string>; changes: SessionChange[] }> {
  const none = { updated: new Map<string, string>(), changes: [] }
  if (ids.length === 0) return none
  const unmarked = 'tenant_id = $1 AND id = ANY($2::uuid[]) AND NOT error'
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: keys } = await tx.query<SessionKey>(
        `SELECT DISTINCT flow_id, session_id FROM messages WHERE ${unmarked}`,
        [tenant, ids],
      )
      if (keys.length === 0) return none
      await lockSessions(tx, tenant, '(flow_id, session_id) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))', [
        keys.map((k) => k.flow_id),
        keys.map((k) => k.session_id),
      ])
      const { rows } = await tx.query<SessionKey & { id: string; json: string }>(
        `UPDATE messages m SET error = true, properties = properties || '{"state": "partial"}'::jsonb
         WHERE ${unmarked}
         RETURNING m.id, m.flow_id, m.session_id, message_json(m) AS json`,
        [tenant, ids],
      )
      const changes = await refreshSessions(tx, tenant, [...keys, ...rows])
      return { updated: new Map(rows.map((r) => [r.id, r.json])), changes }
    }),
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
      const params: unknown[] = [sessionIds]
      let where = 'session_id = ANY($2::text[])'
      if (flowId !== undefined) {
        params.push(flowId)
        where += ' AND flow_id = $3'
      }
      const locked = await lockSessions(tx, tenant, where, params)
      if (locked.length === 0) return { deletedSessionIds: [], changes: [] }
      await tx.query(
        `DELETE FROM messages m USING unnest($2::uuid[], $3::text[]) AS k(f, s)
         WHERE m.tenant_id = $1 AND m.flow_id = k.f AND m.session_id = k.s`,
        [tenant, locked.map((k) => k.flow_id), locked.map((k) => k.session_id)],
      )
      const changes = await refreshSessions(tx, tenant, locked)
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
      const params: unknown[] = [oldId]
      let where = 'session_id = $2 AND message_count > 0'
      if (flowId !== undefined) {
        params.push(flowId)
        where += ' AND flow_id = $3'
      }
      const flows = (await lockSessions(tx, tenant, where, params)).map((k) => k.flow_id)
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
      const keys = flows.flatMap((f) => [
        { flow_id: f, session_id: oldId },
        { flow_id: f, session_id: newId },
      ])
      const changes = await refreshSessions(tx, tenant, keys)
      return { body: `[${rows.map((r) => r.json).join(',')}]`, changes }
    }),
  )
}

/** PUT /api/v1/monitor/messages/{id}: updates fields; a new text marks the message edited. */
export async function updateMessage(
  db: Database,
  tenant: string,
  id: string,
  update: MessageUpdate,
): Promise<{ json: string; changes: SessionChange[] }> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: found } = await tx.query<SessionKey>(
        'SELECT flow_id, session_id FROM messages WHERE tenant_id = $1 AND id = $2',
        [tenant, id],
      )
      const current = found[0]
      if (!current) throw new MessageNotFoundError('Message not found')
      const target = update.session_id ?? current.session_id
      await ensureAndLockSessions(tx, tenant, [current, { flow_id: current.flow_id, session_id: target }])
      const params: unknown[] = [tenant, id, current.flow_id, current.session_id]
      const sets: string[] = []
      const param = (value: unknown) => {
        params.push(value)
        return `$${params.length}`
      }
      if (update.text !== undefined) sets.push(`text = ${param(update.text)}`, 'edit = true')
      else if (update.edit !== undefined) sets.push(`edit = ${param(update.edit)}`)
      if (update.sender !== undefined) sets.push(`sender = ${param(update.sender)}`)
      if (update.sender_name !== undefined) sets.push(`sender_name = ${param(update.sender_name)}`)
      if (update.session_id !== undefined) sets.push(`session_id = ${param(update.session_id)}`)
      if (update.files !== undefined) sets.push(`files = ${param(JSON.stringify(update.files))}::jsonb`)
      if (update.error !== undefined) sets.push(`error = ${param(update.error)}`)
      let properties = update.properties !== undefined ? `${param(JSON.stringify(update.properties))}::jsonb` : ''
      // Langflow marks an edited message in its properties too.
      if (update.text !== undefined) properties = `jsonb_set(${properties || 'properties'}, '{edited}', 'true')`
      if (properties) sets.push(`properties = ${properties}`)
      if (sets.length === 0) sets.push('id = id')
      const { rows } = await tx.query<{ json: string }>(
        `UPDATE messages m SET ${sets.join(', ')}
         WHERE m.tenant_id = $1 AND m.id = $2 AND m.flow_id = $3 AND m.session_id = $4
         RETURNING message_json(m) AS json`,
        params,
      )
      const row = rows[0]
      // The message moved or vanished between the read and the lock: start over.
      if (!row) throw Object.assign(new Error('message changed concurrently'), { code: '40001' })
      const changes = await refreshSessions(tx, tenant, [current, { flow_id: current.flow_id, session_id: target }])
      return { json: row.json, changes }
    }),
  )
}

/** Deletes every message of a flow (used when a flow is deleted). */
export async function deleteFlowMessages(db: Database, tenant: string, flowId: string): Promise<SessionChange[]> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await lockSessions(tx, tenant, 'flow_id = $2', [flowId])
      await tx.query('DELETE FROM messages WHERE tenant_id = $1 AND flow_id = $2', [tenant, flowId])
      return refreshSessions(tx, tenant, locked)
    }),
  )
}

export async function ping(db: Queryable): Promise<void> {
  await db.query('SELECT 1')
}
