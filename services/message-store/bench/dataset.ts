import { randomUUID } from 'node:crypto'
import type { Queryable } from '@session-runtime/db'

/**
 * The benchmark's data: realistic chat messages (a user question, then the
 * model's answer, with Langflow's message properties) seeded straight into the
 * `messages` and `sessions` tables with SQL, and the same messages as bodies of
 * the write requests.
 */

export const TENANT = 'bench-tenant'

const USER_TEXTS = [
  'What are your opening hours on Sunday?',
  'Can you summarize the last answer in two lines?',
  'How do I reset my password?',
  'Translate "good morning" into French, please.',
  'Which plan includes the API access?',
  'Is there a limit on file uploads?',
  'Thanks! And what about the weekend?',
  'Give me an example in Python.',
]

const AI_TEXTS = [
  'We are open from 10:00 to 16:00 on Sundays. Holiday hours may differ; check the calendar page.',
  'Sure: the order ships in 2-3 days, and you can track it from your account under "Orders".',
  'Go to Settings > Security, choose "Reset password" and follow the link we email you.',
  '"Good morning" is "Bonjour" in French. In the evening you would say "Bonsoir".',
  'API access comes with the Team plan and above; the Starter plan has the web app only.',
  'Uploads are limited to 25 MB per file and 100 files per conversation.',
  'On Saturdays we are open from 9:00 to 18:00; on Sundays from 10:00 to 16:00.',
  'Here you go: `print(sorted(items, key=lambda x: x["date"]))` sorts the items by date.',
]

// Langflow's message properties (text_color, background_color, edited, source, ...; see the
// session API spec), trimmed so that a 50-message history is about 23 KB like the one in
// performance-notes: the model's answers name their source, the user's questions carry none.
const USER_PROPERTIES = {}
const AI_PROPERTIES = {
  source: { id: 'ChatOutput-Zk3pQ', display_name: 'Chat Output', source: 'gpt-4o-mini' },
  state: 'complete',
  edited: false,
}

export interface SessionRef {
  flowId: string
  sessionId: string
}

/** The `j`-th message of a conversation (even: the user, odd: the model), as the run-service sends it. */
export function messageInput(ref: SessionRef, j: number, id: string = randomUUID()) {
  const user = j % 2 === 0
  const texts = user ? USER_TEXTS : AI_TEXTS
  return {
    id,
    flow_id: ref.flowId,
    session_id: ref.sessionId,
    sender: user ? 'User' : 'Machine',
    sender_name: user ? 'User' : 'AI',
    text: texts[Math.floor(j / 2) % texts.length] as string,
    properties: user ? USER_PROPERTIES : AI_PROPERTIES,
  }
}

const literal = (s: string) => `'${s.replaceAll("'", "''")}'`
const textArray = (texts: string[]) => `ARRAY[${texts.map(literal).join(', ')}]::text[]`

export interface SeedOptions {
  sessions: number
  perSession: number
  flows: number
}

/**
 * Seeds `sessions × perSession` messages with one INSERT ... SELECT over
 * generate_series, then one consistent `sessions` row per session (count,
 * first/last timestamp, last text, a version from session_version_seq), then
 * ANALYZE. Messages of all sessions are interleaved in time (and so on disk), as
 * when many conversations run at once: a history read touches one heap page per
 * message, not one page for the whole session.
 */
export async function seed(db: Queryable, opts: SeedOptions): Promise<void> {
  const total = opts.sessions * opts.perSession
  const userProps = literal(JSON.stringify(USER_PROPERTIES))
  const aiProps = literal(JSON.stringify(AI_PROPERTIES))
  await db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text, properties)
     SELECT md5('bench-message-' || i)::uuid, $1,
       md5('bench-flow-' || (x.s % $3))::uuid, md5('bench-session-' || x.s)::uuid::text,
       now() - interval '1 day' + i * interval '10 milliseconds',
       CASE WHEN x.is_user THEN 'User' ELSE 'Machine' END,
       CASE WHEN x.is_user THEN 'User' ELSE 'AI' END,
       CASE WHEN x.is_user THEN (${textArray(USER_TEXTS)})[1 + (x.j / 2) % ${USER_TEXTS.length}]
         ELSE (${textArray(AI_TEXTS)})[1 + (x.j / 2) % ${AI_TEXTS.length}] END,
       CASE WHEN x.is_user THEN ${userProps}::jsonb ELSE ${aiProps}::jsonb END
     FROM generate_series(0, $2::int - 1) AS i,
       LATERAL (SELECT i % $4 AS s, i / $4 AS j, (i / $4) % 2 = 0 AS is_user) AS x
     ORDER BY i`,
    [TENANT, total, opts.flows, opts.sessions],
  )
  await db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT tenant_id, flow_id, session_id, count(*), min(ts), max(ts),
       (array_agg(text ORDER BY ts DESC, seq DESC))[1], nextval('session_version_seq')
     FROM messages WHERE tenant_id = $1
     GROUP BY tenant_id, flow_id, session_id
     ORDER BY min(seq)`,
    [TENANT],
  )
  await db.query('ANALYZE messages')
  await db.query('ANALYZE sessions')
}

/** Every seeded session, in a stable order. */
export async function listSessions(db: Queryable): Promise<SessionRef[]> {
  const { rows } = await db.query<{ flow_id: string; session_id: string }>(
    'SELECT flow_id::text, session_id FROM sessions WHERE tenant_id = $1 ORDER BY version',
    [TENANT],
  )
  return rows.map((r) => ({ flowId: r.flow_id, sessionId: r.session_id }))
}

/** What the store answers for a session's history: message_json of its rows, as one JSON array. */
export async function historyBody(db: Queryable, ref: SessionRef, limit: number): Promise<string> {
  const { rows } = await db.query<{ body: string }>(
    `SELECT '[' || coalesce(string_agg(json, ',' ORDER BY ts, seq), '') || ']' AS body FROM (
       SELECT message_json(m) AS json, m.ts, m.seq FROM messages m
       WHERE m.tenant_id = $1 AND m.flow_id = $2 AND m.session_id = $3 AND NOT m.error
       ORDER BY m.ts DESC, m.seq DESC LIMIT $4) h`,
    [TENANT, ref.flowId, ref.sessionId, limit],
  )
  return rows[0]?.body ?? '[]'
}
