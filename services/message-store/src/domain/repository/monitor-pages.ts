import type { Queryable } from '@session-runtime/db'
import type { FeedbackQuery, MessagesQuery, SessionsQuery } from '@session-runtime/schemas'
import {
  decodeCursor,
  encodeCursor,
  InvalidCursorError,
  isCursorBigint,
  isCursorTimestamp,
  isCursorUuid,
} from '../cursor.js'
import { FEEDBACK_GIVEN } from './feedback.js'
import { metadataContainment, sessionSummaryJson } from './session-lifecycle.js'

/** The monitor API's listings: filters, ordering and keyset paging (read-only, never cached). */

const SORT_COLUMN = { timestamp: null, sender: 'sender', sender_name: 'sender_name', session_id: 'session_id' } as const
const CURSOR_FIELDS = ['o', 'd', 'v', 't', 's'] as const

export interface Page {
  /** JSON array text. */
  body: string
  nextCursor: string | undefined
}

/** A condition on the messages (alias `m`): without a parameter, or with one, written `?` (each `?` is that parameter). */
export type MessageCondition = readonly [sql: string] | readonly [sql: string, value: unknown]

/**
 * GET /api/v1/monitor/messages: filters, ordering, offset and keyset cursor. `conditions` narrow it further
 * (the search: domain/repository/search.ts).
 */
export async function listMessages(
  db: Queryable,
  tenant: string,
  q: MessagesQuery,
  conditions: readonly MessageCondition[] = [],
): Promise<Page> {
  const params: unknown[] = [tenant]
  const where = ['m.tenant_id = $1']
  const add = (sql: string, value: unknown) => {
    params.push(value)
    where.push(sql.replaceAll('?', `$${params.length}`))
  }
  if (q.flow_id !== undefined) add('m.flow_id = ?', q.flow_id)
  if (q.session_id !== undefined) add('m.session_id = ?', q.session_id)
  if (q.sender !== undefined) add('m.sender = ?', q.sender)
  if (q.sender_name !== undefined) add('m.sender_name = ?', q.sender_name)
  for (const condition of conditions) {
    if (condition.length === 1) where.push(condition[0])
    else add(condition[0], condition[1])
  }
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
  // otherwise build the JSON of every one of them before the sort (seconds at 80,000 messages; the soak). The
  // rows are found again by id and `ts`: the month of `ts` is the one partition to look in (migrations/007).
  const { rows } = await db.query<{ json: string; t: string; s: string; v: string | null }>(
    `SELECT message_json(m) AS json, ${iso('m.ts')} AS t,
       m.seq::text AS s, ${column ? `m.${column}` : 'NULL'} AS v
     FROM (
       SELECT m.id, m.ts FROM messages m WHERE ${where.join(' AND ')}
       ORDER BY ${order} LIMIT $${params.length - 1} OFFSET $${params.length}
     ) page JOIN messages m ON m.tenant_id = $1 AND m.id = page.id AND m.ts = page.ts
     ORDER BY ${order}`,
    params,
  )
  return toPage(rows, q.limit, (last) => ({ o: q.order_by, d: dir, v: last.v, t: last.t, s: last.s }))
}

/** A message list newest first (by timestamp, keyset-paged with the list's cursors), with these filters. */
export function newestFirst(
  q: Pick<MessagesQuery, 'flow_id' | 'session_id' | 'sender' | 'limit' | 'cursor'>,
): MessagesQuery {
  const { flow_id, session_id, sender, limit, cursor } = q
  return { flow_id, session_id, sender, order_by: 'timestamp', order: 'DESC', limit, offset: 0, cursor }
}

/** GET /api/v1/monitor/feedback: a flow's (or one session's) messages with feedback, newest first, keyset-paged. */
export function listFeedback(db: Queryable, tenant: string, q: FeedbackQuery): Promise<Page> {
  return listMessages(db, tenant, newestFirst(q), [[FEEDBACK_GIVEN]])
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
export async function listSessions(
  db: Queryable,
  tenant: string,
  q: SessionsQuery,
  metadata: Record<string, string> = {},
): Promise<Page> {
  const params: unknown[] = [tenant]
  const where = ['tenant_id = $1', 'message_count > 0']
  if (q.flow_id !== undefined) {
    params.push(q.flow_id)
    where.push(`flow_id = $${params.length}`)
  }
  if (Object.keys(metadata).length > 0) {
    params.push(metadataContainment(metadata))
    where.push(`metadata @> $${params.length}::jsonb`)
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
    `SELECT ${sessionSummaryJson('sessions')} AS json,
       ${iso('last_ts')} AS t, session_id AS s, flow_id::text AS f
     FROM sessions WHERE ${where.join(' AND ')}
     ORDER BY last_ts DESC, session_id ASC, flow_id ASC LIMIT $${params.length}`,
    params,
  )
  return toPage(rows, q.limit, (last) => ({ t: last.t, s: last.s, f: last.f }))
}
