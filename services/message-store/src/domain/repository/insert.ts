import type { Database } from '@session-runtime/db'
import type { MessageInput } from '@session-runtime/schemas'
import { HISTORY_COLUMNS, type SessionAppend, type SessionChange } from './changes.js'
import { MessageIdConflictError } from './errors.js'
import { FEEDBACK_COUNTS } from './feedback.js'
import { withRetry } from './retry.js'
import { cappedTokens } from './sessions.js'

/**
 * The write path: one INSERT statement stores the messages of one or more callers (group commit),
 * updates their sessions' summaries and versions, and reports per session what it appended, for the
 * history cache. Every statement is scoped by tenant; messages come back as JSON text built by Postgres.
 */

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

export const INSERT_SQL = `
WITH input AS (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
    tenant_id text, id uuid, flow_id uuid, session_id text, sender text, sender_name text, text text,
    files jsonb, error boolean, edit boolean, properties jsonb, category text,
    content_blocks jsonb, context_id text, session_metadata jsonb)) WITH ORDINALITY AS x(
    tenant_id, id, flow_id, session_id, sender, sender_name, text, files, error, edit, properties,
    category, content_blocks, context_id, session_metadata, ord)
),
-- Each (tenant, id) once, at its first occurrence in the statement.
firsts AS (
  SELECT DISTINCT ON (tenant_id, id) * FROM input ORDER BY tenant_id, id, ord
),
-- The id ledger decides which messages are new (migrations/007: the partitioned table can't be keyed by id). An id
-- belongs to the tenant that stored it first: not stored again for another (that caller gets a 409). The ledger
-- draws each message's timestamp, in input order (volatile functions are evaluated after the sort).
ids AS (
  INSERT INTO message_ids AS l (tenant_id, id, ts)
  SELECT tenant_id, id, clock_timestamp() FROM firsts i
  -- A scalar subquery, not NOT EXISTS: Postgres turns NOT EXISTS into a hash anti join over a sequential scan
  -- of the ids while the table is small or not yet analyzed (every write then cost O(table): 2.4 ms of
  -- backend CPU per 2-row write at 16,000 rows, against 0.87 ms); a subquery runs per input row, by index.
  WHERE (SELECT o.tenant_id FROM message_ids o WHERE o.id = i.id AND o.tenant_id <> i.tenant_id LIMIT 1) IS NULL
  ORDER BY ord
  ON CONFLICT (tenant_id, id) DO NOTHING
  RETURNING l.tenant_id, l.id, l.ts
),
ins AS (
  INSERT INTO messages AS m (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text,
    files, error, edit, properties, category, content_blocks, context_id)
  SELECT i.id, i.tenant_id, flow_id, session_id, d.ts, sender, sender_name, text,
    coalesce(files, '[]'), coalesce(error, false), coalesce(edit, false), coalesce(properties, '{}'),
    coalesce(category, CASE WHEN coalesce(error, false) THEN 'error' ELSE 'message' END),
    coalesce(content_blocks, '[]'), coalesce(context_id, '')
  FROM firsts i JOIN ids d ON d.tenant_id = i.tenant_id AND d.id = i.id
  ORDER BY ord
  RETURNING m.tenant_id, m.id, m.flow_id, m.session_id, m.ts, m.seq, m.text, m.error, m.properties, ${HISTORY_COLUMNS},
    usage_tokens(m.properties, 'input_tokens') AS input_tokens, usage_tokens(m.properties, 'output_tokens') AS output_tokens,
    usage_tokens(m.properties, 'total_tokens') AS total_tokens
),
agg AS (
  SELECT tenant_id, flow_id, session_id, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts,
    (array_agg(text ORDER BY ts DESC, seq DESC))[1] AS last_text, ${FEEDBACK_COUNTS},
    ${cappedTokens('sum(input_tokens)')} AS input_tokens, ${cappedTokens('sum(output_tokens)')} AS output_tokens,
    ${cappedTokens('sum(total_tokens)')} AS total_tokens
  FROM ins m GROUP BY tenant_id, flow_id, session_id
),
-- Per session, the merge of the session_metadata of its inserted messages (a later message's key wins;
-- null removes a key), applied with the messages: a run's metadata is on its session with its first message.
meta AS (
  SELECT i.tenant_id, i.flow_id, i.session_id, jsonb_object_agg(e.key, e.value ORDER BY i.ord) AS patch
  FROM input i JOIN ins n ON n.tenant_id = i.tenant_id AND n.id = i.id
  CROSS JOIN LATERAL jsonb_each(i.session_metadata) e
  WHERE i.session_metadata IS NOT NULL
  GROUP BY i.tenant_id, i.flow_id, i.session_id
),
up AS (
  INSERT INTO sessions AS s (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version,
    metadata, positive_feedback_count, negative_feedback_count, input_tokens, output_tokens, total_tokens)
  SELECT a.tenant_id, a.flow_id, a.session_id, n, first_ts, last_ts, last_text, nextval('session_version_seq'),
    coalesce(session_metadata_merge('{}', x.patch), '{}'), positive, negative, input_tokens, output_tokens, total_tokens
  FROM agg a LEFT JOIN meta x ON x.tenant_id = a.tenant_id AND x.flow_id = a.flow_id AND x.session_id = a.session_id
  ORDER BY a.tenant_id, a.flow_id, a.session_id
  ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE SET
    metadata = coalesce(session_metadata_merge(s.metadata, (SELECT x.patch FROM meta x
      WHERE x.tenant_id = excluded.tenant_id AND x.flow_id = excluded.flow_id AND x.session_id = excluded.session_id)),
      s.metadata),
    message_count = s.message_count + excluded.message_count,
    positive_feedback_count = s.positive_feedback_count + excluded.positive_feedback_count,
    negative_feedback_count = s.negative_feedback_count + excluded.negative_feedback_count,
    first_ts = least(s.first_ts, excluded.first_ts),
    last_ts = greatest(s.last_ts, excluded.last_ts),
    last_text = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_text ELSE s.last_text END,
    input_tokens = ${cappedTokens('s.input_tokens::numeric + excluded.input_tokens')},
    output_tokens = ${cappedTokens('s.output_tokens::numeric + excluded.output_tokens')},
    total_tokens = ${cappedTokens('s.total_tokens::numeric + excluded.total_tokens')},
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
/**
 * Stores the messages of one or more requests in one statement; idempotent on
 * `id`: a replayed id is not stored again and answers with the stored message. A
 * request naming an id that another tenant owns is refused (the others are not).
 * The ids are kept in the ledger `message_ids`, keyed (tenant_id, id); ownership is looked up by id alone (index
 * `message_ids_id`, migrations/007), the one lookup that is not scoped by tenant (docs/scaling.md).
 */
export async function insertMessages(db: Database, requests: WriteRequest[]): Promise<InsertResult> {
  // An id that two tenants name in one statement is the first one's: the other's rows are left out here
  // (the statement's ownership check sees stored rows only), so that request is refused like a later one.
  const owners = new Map<string, string>()
  const owned = (tenant: string, id: string) => {
    const key = id.toLowerCase()
    const owner = owners.get(key)
    if (owner === undefined) owners.set(key, tenant)
    return (owner ?? tenant) === tenant
  }
  const rowsIn = requests.flatMap((r) =>
    r.inputs.filter((input) => owned(r.tenant, input.id)).map((input) => ({ ...input, tenant_id: r.tenant })),
  )
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
