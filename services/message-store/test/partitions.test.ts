// Issue 14, point 3: `messages` partitioned by month (migrations/007). On a 1,000,000-message table (real Postgres;
// 20,000 on PGlite, which holds the data in this process's memory): keyset cursors page across a partition boundary,
// search and export still work, a sweep of every tenant drops a partition whose sessions have all expired (the table
// is gone: not deleted row by row) and keeps one with a live session's rows; and the partitions are created ahead,
// taking over the rows the tail partition held, while a deleted message's id can be stored again.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { dropPartitionIfExpired } from '../src/domain/repository/partitions.js'
import { buildTestApp, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)
// Seeding and indexing a million messages, then a sweep.
t.setTimeout(600_000)

/** Messages in the oldest partition (flow F, all expired) and in the next one (flow G, no limit: kept). */
const TOTAL = storageKind === 'postgres' ? 1_000_000 : 20_000
const IN_A = (TOTAL * 3) / 5 - 50
const IN_B = TOTAL - IN_A - 100 - 100 - 6
const SESSIONS_A = TOTAL / 100
const SESSIONS_B = TOTAL / 1000
const T = 'tenant-p'
const F = randomUUID()
const G = randomUUID()

// Seeding statements run for longer than the service's usual statement timeout.
const app = await buildTestApp(t, {
  env: { RETENTION_SWEEP_INTERVAL_SECONDS: '0', DATABASE_STATEMENT_TIMEOUT_MS: '600000' },
})

async function api(method: 'GET' | 'PUT', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, headers: internalHeaders(T), payload: payload as never })
  return { status: res.statusCode, body: res.body, next: res.headers['x-next-cursor'] as string | undefined }
}

/** Every page of a listing (`limit` per page), following X-Next-Cursor. */
async function allPages(url: string): Promise<Array<{ id: string; text: string; timestamp: string }>> {
  const out: Array<{ id: string; text: string; timestamp: string }> = []
  let cursor: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const res = await api('GET', cursor ? `${url}&cursor=${encodeURIComponent(cursor)}` : url)
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${res.body}`)
    out.push(...JSON.parse(res.body))
    cursor = res.next
    if (!cursor) return out
  }
  throw new Error('too many pages')
}

const { rows: months } = await app.db.query<{ a: string; b: string; c: string; now: string; name_a: string }>(
  `SELECT m.a::text, m.b::text, m.c::text, m.now::text, 'messages_' || to_char(m.a AT TIME ZONE 'UTC', 'YYYY_MM') AS name_a
   FROM (SELECT date_trunc('month', now() - interval '3 months', 'UTC') AS a,
     date_trunc('month', now() - interval '2 months', 'UTC') AS b,
     date_trunc('month', now() - interval '1 month', 'UTC') AS c,
     date_trunc('month', now(), 'UTC') AS now) m`,
)
const { a, b, c, now, name_a } = months[0] as (typeof months)[0]
const nameOf = async (from: string) =>
  (
    await app.db.query<{ n: string }>(
      `SELECT 'messages_' || to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY_MM') AS n`,
      [from],
    )
  ).rows[0]?.n as string
const name_b = await nameOf(b)
const name_c = await nameOf(c)

/**
 * Month A: IN_A messages of SESSIONS_A sessions of flow F, and the last 50 of session "span" (whose other 50 are in
 * month B; one of A's texts holds "needlealpha"). Month B: IN_B messages of SESSIONS_B sessions of flow G (no limit),
 * one with "needlebeta". Month C: 10 sessions of 10 messages, and 5 of session "live" whose sixth message is of now.
 * A and B are filled as plain tables and attached (their indexes are built once, not a million times); then the
 * ids, the sessions' summaries and the planner's statistics.
 */
async function seed() {
  const insert = (table: string) =>
    `INSERT INTO ${table} (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text)`
  // The months A to C (the head partition gives them up); A and B replaced by tables filled before they are attached.
  t.equal(await app.repository.ensurePartitions(), 0, 'the months from now on were created on start')
  await app.db.query('SELECT messages_ensure_partitions($1::timestamptz, $2::timestamptz)', [a, now])
  for (const name of [name_a, name_b]) {
    await app.db.query(`ALTER TABLE messages DETACH PARTITION ${name}`)
    await app.db.query(`DROP TABLE ${name}`)
  }
  await app.db.query(`CREATE TABLE ${name_a} (LIKE messages INCLUDING DEFAULTS)`)
  await app.db.query(
    `${insert(name_a)}
     SELECT gen_random_uuid(), $1, $2::uuid, 'a-' || (g % $5), $3::timestamptz + ($4::timestamptz - $3::timestamptz - interval '1 hour') * ((g - 1)::float8 / $6),
       CASE WHEN g % 2 = 0 THEN 'Machine' ELSE 'User' END, CASE WHEN g % 2 = 0 THEN 'AI' ELSE 'User' END,
       'message ' || g || ' about opening hours' || CASE WHEN g = 4242 THEN ' needlealpha' ELSE '' END
     FROM generate_series(1, $6::int) g`,
    [T, F, a, b, SESSIONS_A, IN_A],
  )
  await app.db.query(`CREATE TABLE ${name_b} (LIKE messages INCLUDING DEFAULTS)`)
  await app.db.query(
    `${insert(name_b)}
     SELECT gen_random_uuid(), $1, $2::uuid, 'g-' || (g % $5), $3::timestamptz + ($4::timestamptz - $3::timestamptz - interval '1 hour') * ((g - 1)::float8 / $6),
       'User', 'User', 'kept message ' || g || CASE WHEN g = 777 THEN ' needlebeta' ELSE '' END
     FROM generate_series(1, $6::int) g`,
    [T, G, b, c, SESSIONS_B, IN_B],
  )
  // The session across the boundary: 50 messages in the last half hour of A, 50 in the first minutes of B.
  for (const [table, start] of [
    [name_a, `$3::timestamptz - interval '30 minutes'`],
    [name_b, '$3::timestamptz'],
  ] as const) {
    await app.db.query(
      `${insert(table)}
       SELECT gen_random_uuid(), $1, $2::uuid, 'span', ${start} + g * interval '1 second', 'User', 'User',
         'span ' || g || ' of ' || $4
       FROM generate_series(1, 50) g`,
      [T, F, b, table === name_a ? 'a' : 'b'],
    )
  }
  for (const [table, from, to] of [
    [name_a, a, b],
    [name_b, b, c],
  ] as const) {
    await app.db.query(`ALTER TABLE messages ATTACH PARTITION ${table} FOR VALUES FROM ('${from}') TO ('${to}')`)
  }
  await app.db.query(
    `${insert('messages')}
     SELECT gen_random_uuid(), $1, $2::uuid, 'c-' || (g % 10), $3::timestamptz + g * interval '1 minute', 'User', 'User', 'c ' || g
     FROM generate_series(1, 100) g
     UNION ALL
     SELECT gen_random_uuid(), $1, $2::uuid, 'live', $3::timestamptz + g * interval '1 hour', 'User', 'User', 'live ' || g
     FROM generate_series(1, 5) g
     UNION ALL SELECT gen_random_uuid(), $1, $2::uuid, 'live', now(), 'User', 'User', 'live now'`,
    [T, F, c],
  )
  await app.db.query('INSERT INTO message_ids (tenant_id, id, ts) SELECT tenant_id, id, ts FROM messages')
  await app.db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT tenant_id, flow_id, session_id, count(*), min(ts), max(ts), (array_agg(text ORDER BY ts DESC, seq DESC))[1],
       nextval('session_version_seq')
     FROM messages GROUP BY tenant_id, flow_id, session_id`,
  )
  await app.db.query('ANALYZE messages')
  await app.db.query('ANALYZE sessions')
}

t.test(`a ${TOTAL.toLocaleString('en-US')}-message table across partitions`, async (t) => {
  let started = performance.now()
  await seed()
  // Durations are reported, never asserted (performance goes to docs/benchmarks.md).
  t.comment(`seeded and indexed in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const { rows: count } = await app.db.query<{ n: string }>('SELECT count(*) AS n FROM messages')
  t.equal(Number(count[0]?.n), TOTAL, `${TOTAL} messages`)

  // Keyset cursors: a session's pages (7 messages each) cross the boundary between months A and B.
  const span = await allPages(`/api/v1/monitor/messages?flow_id=${F}&session_id=span&limit=7`)
  t.equal(span.length, 100, 'every message of the session, once')
  t.same(
    span.map((m) => m.text),
    [
      ...Array.from({ length: 50 }, (_, i) => `span ${i + 1} of a`),
      ...Array.from({ length: 50 }, (_, i) => `span ${i + 1} of b`),
    ],
    'oldest first, across the boundary',
  )
  const newest = await allPages(`/api/v1/monitor/messages?flow_id=${F}&session_id=span&limit=9&order=DESC`)
  t.same(
    newest.map((m) => m.id),
    span.map((m) => m.id).reverse(),
    'newest first, the same messages in reverse',
  )

  // Search: one hit in each of the two months, newest first, one per page.
  for (const q of ['needlealpha', 'opening hours', 'kept']) {
    started = performance.now()
    const res = await api('GET', `/api/v1/monitor/messages/search?q=${encodeURIComponent(q)}`)
    t.equal(res.status, 200)
    t.comment(`search "${q}": ${JSON.parse(res.body).length} hits in ${(performance.now() - started).toFixed(0)} ms`)
  }
  const hits = await allPages('/api/v1/monitor/messages/search?q=needle&limit=1')
  t.same(
    hits.map((m) => m.text),
    ['kept message 777 needlebeta', 'message 4242 about opening hours needlealpha'],
    'search finds the hits of both partitions, newest first, paged across them',
  )

  // Export: the session's summary, then its messages oldest first across both months.
  const exp = await api('GET', `/api/v1/monitor/sessions/span/export?flow_id=${F}`)
  t.equal(exp.status, 200)
  const lines = exp.body
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.match(lines[0], { session: { session_id: 'span', flow_id: F, message_count: 100 } }, 'the summary first')
  t.same(
    lines.slice(1).map((m: { id: string }) => m.id),
    span.map((m) => m.id),
    'then every message, oldest first',
  )

  // Flow F keeps its sessions a day, flow G has no limit (no tenant default).
  t.equal((await api('PUT', `/api/v1/monitor/retention?flow_id=${F}`, { max_idle_seconds: 86_400 })).status, 200)
  started = performance.now()
  const result = await app.retentionSweeper.sweep()
  t.comment(
    `sweep (one partition dropped, ${SESSIONS_A + 11} sessions deleted) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  )
  t.equal(result.droppedPartitions, 1, 'one partition dropped')
  t.same(
    result,
    {
      droppedPartitions: 1,
      // A's sessions and "span" (all in A, or expired), and C's 10 expired ones; "live" and G's are kept.
      deletedSessions: SESSIONS_A + 1 + 10,
      // A whole, then row by row: span's 50 in B and C's 100.
      deletedMessages: IN_A + 50 + 50 + 100,
    },
    'the sweep counts what it dropped and what it deleted',
  )
  const { rows: tables } = await app.db.query<{ a: string | null; b: string | null; c: string | null }>(
    'SELECT to_regclass($1)::text AS a, to_regclass($2)::text AS b, to_regclass($3)::text AS c',
    [name_a, name_b, name_c],
  )
  t.same(
    tables[0],
    { a: null, b: name_b, c: name_c },
    'A is dropped (no rows deleted one by one: its table is gone); B and C stay',
  )
  const { rows: left } = await app.db.query<{ part: string; n: string }>(
    `SELECT tableoid::regclass::text AS part, count(*) AS n FROM messages WHERE ts < $1::timestamptz GROUP BY 1 ORDER BY 1`,
    [now],
  )
  t.same(
    left.map((r) => [r.part, Number(r.n)]),
    [
      [name_b, IN_B],
      [name_c, 5],
    ],
    "B keeps G's messages (no limit), span's 50 deleted; C keeps the live session's 5",
  )
  const { rows: ids } = await app.db.query<{ n: string }>(
    'SELECT count(*) AS n FROM message_ids WHERE ts >= $1::timestamptz AND ts < $2::timestamptz',
    [a, b],
  )
  t.equal(Number(ids[0]?.n), 0, "the dropped month's ids are forgotten")
  const { rows: sessions } = await app.db.query<{ session_id: string; message_count: string }>(
    `SELECT session_id, message_count FROM sessions WHERE tenant_id = $1 AND flow_id = $2 AND message_count > 0`,
    [T, F],
  )
  t.same(
    sessions.map((s) => [s.session_id, Number(s.message_count)]),
    [['live', 6]],
    'flow F: only the live session is left, whole',
  )
  const live = await allPages(`/api/v1/monitor/messages?flow_id=${F}&session_id=live&limit=4`)
  t.equal(live.length, 6, "the live session's history, across C and this month")
  t.same(
    JSON.parse((await api('GET', '/api/v1/monitor/messages/search?q=needle')).body).map(
      (m: { text: string }) => m.text,
    ),
    ['kept message 777 needlebeta'],
  )
  t.same(
    await app.retentionSweeper.sweep(),
    { droppedPartitions: 0, deletedSessions: 0, deletedMessages: 0 },
    'a second sweep finds nothing',
  )
})

t.test('partitions ahead take over the rows of the tail partition; a deleted id can be stored again', async (t) => {
  const flow = randomUUID()
  const far = await app.db.query<{ ts: string; name: string }>(
    `SELECT (now() + interval '9 months')::text AS ts, 'messages_' || to_char((now() + interval '9 months') AT TIME ZONE 'UTC', 'YYYY_MM') AS name`,
  )
  const { ts, name } = far.rows[0] as { ts: string; name: string }
  const id = randomUUID()
  await app.db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text)
     VALUES ($1, $2, $3, 'later', $4, 'User', 'User', 'from the future')`,
    [id, T, flow, ts],
  )
  const where = async () =>
    (await app.db.query<{ part: string }>('SELECT tableoid::regclass::text AS part FROM messages WHERE id = $1', [id]))
      .rows[0]?.part
  t.equal(await where(), 'messages_tail', 'a month without a partition yet: the tail partition holds it')
  await app.db.query(`SELECT messages_ensure_partitions(now(), now() + interval '10 months')`)
  t.equal(await where(), name, "its month's partition, once created, holds it")
  t.equal(await app.repository.ensurePartitions(), 0, 'creating them again creates nothing')

  const message = messageInput({ flow_id: flow, session_id: 's', text: 'once' })
  await store(app, T, [message])
  await store(app, T, [message])
  const count = async () =>
    Number(
      (await app.db.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE id = $1', [message.id])).rows[0]?.n,
    )
  t.equal(await count(), 1, 'a replayed id is stored once')
  const del = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(T),
    payload: [message.id],
  })
  t.equal(del.statusCode, 204, 'deleted')
  t.equal(await count(), 0)
  await store(app, T, [message])
  t.equal(await count(), 1, "the deleted message's id is stored again")
})

t.test('a session that gets a message after its month was dropped is summarized from what it has left', async (t) => {
  const flow = randomUUID()
  t.equal((await api('PUT', `/api/v1/monitor/retention?flow_id=${flow}`, { max_idle_seconds: 86_400 })).status, 200)
  const { rows } = await app.db.query<{ from: string; name: string }>(
    `SELECT m::text AS from, 'messages_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM') AS name
     FROM date_trunc('month', now() - interval '5 months', 'UTC') m`,
  )
  const name = rows[0]?.name as string
  const from = rows[0]?.from as string
  await app.db.query('SELECT messages_ensure_partitions($1::timestamptz, $1::timestamptz + interval $$1 day$$)', [from])
  await app.db.query(
    `WITH m AS (
       INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text)
       SELECT gen_random_uuid(), $1, $2::uuid, 'back', $3::timestamptz + g * interval '1 hour', 'User', 'User', 'old ' || g
       FROM generate_series(1, 3) g RETURNING tenant_id, id, ts, flow_id, session_id, text)
     , i AS (INSERT INTO message_ids (tenant_id, id, ts) SELECT tenant_id, id, ts FROM m)
     INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT tenant_id, flow_id, session_id, count(*), min(ts), max(ts), max(text), nextval('session_version_seq')
     FROM m GROUP BY 1, 2, 3`,
    [T, flow, from],
  )
  const historyTexts = async () => (await history(app, T, { flow_id: flow, session_id: 'back' })).map((m) => m.text)
  t.same(await historyTexts(), ['old 1', 'old 2', 'old 3'], 'the old history, now cached')
  const part = (await app.repository.listPartitions()).find((p) => p.name === name)
  if (!part) throw new Error(`no partition ${name}`)
  const holder = randomUUID()
  t.ok(await app.repository.acquireSweepLease(holder, 60), 'the sweep lease')
  t.teardown(() => app.repository.releaseSweepLease(holder))
  t.same(
    await dropPartitionIfExpired(app.db, holder, 60, part),
    { kind: 'dropped', messages: 3 },
    'the month is dropped',
  )
  // Before the sweep's batches reach the session, it gets a message: it is live again, without its old messages.
  await store(app, T, [messageInput({ flow_id: flow, session_id: 'back', text: 'new' })])
  await app.repository.repairDroppedPartitions([part])
  t.same(await historyTexts(), ['new'], 'its history holds what it has, not the cached old one')
  const { rows: summary } = await app.db.query<{ message_count: string; last_text: string }>(
    'SELECT message_count, last_text FROM sessions WHERE tenant_id = $1 AND flow_id = $2',
    [T, flow],
  )
  t.same(summary, [{ message_count: '1', last_text: 'new' }], 'its summary counts what it has')
})
