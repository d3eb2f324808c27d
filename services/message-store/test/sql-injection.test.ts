// SQL only through parameters, shown by behaviour: injection strings in every monitor filter, ordering,
// cursor (raw and crafted), path parameter and body answer a clear 4xx, or an exact match (usually nothing);
// another tenant's rows never show up; the stored strings come back byte for byte; the tables are intact.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, history, internalHeaders, messageInput, store } from './helpers/app.js'

const PAYLOADS = [
  "'; DROP TABLE messages; --",
  "' OR '1'='1",
  "' OR 1=1 --",
  "') OR ('a'='a",
  '" OR ""="',
  '\\',
  "\\'",
  '$1',
  '$$; DROP TABLE sessions; $$',
  '%',
  '_',
  '*',
  "' UNION SELECT message_json(m) FROM messages m --",
  '1; SELECT pg_sleep(5)',
  "'||(SELECT tenant_id FROM messages LIMIT 1)||'",
  'héllo ☃ 𝄞 \u202e rtl \u2028 line',
  '0x27',
  "E'\\x27'",
]

/** A payload as an ASCII test name (a raw U+2028 would break the TAP stream). */
const label = (value: unknown) =>
  JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

const app = await buildTestApp(t)
const headers = internalHeaders('tenant-a')
const flow = randomUUID()
const otherFlow = randomUUID()

// tenant-a: two plain sessions and one whose ID, sender and text are injection strings; tenant-b: one session
await store(app, 'tenant-a', [
  messageInput({ flow_id: flow, session_id: 's1', text: 'one' }),
  messageInput({ flow_id: flow, session_id: 's1', sender: 'Machine', sender_name: 'AI', text: 'two' }),
  messageInput({ flow_id: flow, session_id: 's2', text: 'three' }),
  messageInput({
    flow_id: flow,
    session_id: "'; DROP TABLE messages; --",
    sender: "' OR '1'='1",
    sender_name: '$1',
    text: "' OR 1=1 --",
  }),
])
await store(app, 'tenant-b', [messageInput({ flow_id: otherFlow, session_id: 'b1', text: 'secret of b' })])

const TOTAL_A = 4
const TOTAL_B = 1
const INJECTED_SESSION = "'; DROP TABLE messages; --"

type Message = { id: string; session_id: string; sender: string; sender_name: string; text: string }
const get = (url: string, query: Record<string, string> = {}, tenant = 'tenant-a') =>
  app.inject({ method: 'GET', url, query, headers: internalHeaders(tenant) })
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const isClear4xx = (status: number) => status === 400 || status === 404 || status === 409 || status === 422

async function allMessages(tenant: string): Promise<Message[]> {
  const res = await get('/api/v1/monitor/messages', { limit: '1000' }, tenant)
  if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${res.body}`)
  return res.json()
}

t.test('injection strings as stored values come back byte for byte', async (t) => {
  const [injected] = (await get('/api/v1/monitor/messages', { session_id: INJECTED_SESSION })).json() as Message[]
  t.match(injected, { session_id: INJECTED_SESSION, sender: "' OR '1'='1", sender_name: '$1', text: "' OR 1=1 --" })
  const bySender = await get('/api/v1/monitor/messages', { sender: "' OR '1'='1", sender_name: '$1' })
  t.equal((bySender.json() as Message[]).length, 1, 'an exact match, not a condition')
  const ids = (await get('/api/v1/monitor/messages/sessions', { flow_id: flow })).json() as string[]
  t.same([...ids].sort(), [INJECTED_SESSION, 's1', 's2'].sort())
})

t.test('filters: an exact match or nothing, never another row or another tenant', async (t) => {
  for (const payload of PAYLOADS) {
    const expected = payload === INJECTED_SESSION ? 1 : 0
    for (const field of ['session_id', 'sender', 'sender_name']) {
      const res = await get('/api/v1/monitor/messages', { [field]: payload })
      t.equal(res.statusCode, 200, `${field}=${label(payload)}: 200`)
      const rows = res.json() as Message[]
      const matching = field === 'session_id' ? expected : 0
      const exact = rows.filter((m) => m[field as keyof Message] === payload)
      t.equal(rows.length, exact.length, `${field}=${label(payload)}: only exact matches`)
      if (field === 'session_id') t.equal(rows.length, matching, `${field}=${label(payload)}: ${matching} row(s)`)
    }
    const hist = await history(app, 'tenant-a', { flow_id: flow, session_id: payload, sender: payload })
    t.same(hist, [], `history session_id/sender=${label(payload)}: nothing`)
    const histB = await history(app, 'tenant-b', { flow_id: otherFlow, session_id: payload })
    t.same(histB, [], `history of b, session_id=${label(payload)}: nothing`)
  }
})

t.test('typed parameters: a clear 4xx', async (t) => {
  for (const payload of PAYLOADS) {
    const cases: [string, Record<string, string>][] = [
      ['/api/v1/monitor/messages', { flow_id: payload }],
      ['/api/v1/monitor/messages', { order_by: payload }],
      ['/api/v1/monitor/messages', { order: payload }],
      ['/api/v1/monitor/messages', { limit: payload }],
      ['/api/v1/monitor/messages', { offset: payload }],
      ['/api/v1/monitor/messages', { cursor: payload }],
      ['/api/v1/monitor/messages/sessions', { flow_id: payload }],
      ['/api/v1/monitor/sessions', { flow_id: payload }],
      ['/api/v1/monitor/sessions', { cursor: payload }],
      ['/api/v1/monitor/sessions', { limit: payload }],
      ['/internal/history', { flow_id: payload, session_id: 's1' }],
    ]
    for (const [url, query] of cases) {
      // `0x27` is a number to the schema's coercion (39): a valid limit, no injection
      if (Number.isFinite(Number(payload)) && ('limit' in query || 'offset' in query)) continue
      const res = await get(url, query)
      t.ok(isClear4xx(res.statusCode), `${url} ${label(query)}: ${res.statusCode}`)
      t.match(res.json(), { detail: String, code: String }, 'in the error envelope')
    }
  }
})

t.test('crafted cursors: every field an injection string, still a 4xx or a page of own rows', async (t) => {
  const ts = '2024-01-01T00:00:00.000000Z'
  for (const payload of PAYLOADS) {
    const messageCursors = [
      { o: payload, d: 'ASC', v: null, t: ts, s: '1' },
      { o: 'timestamp', d: payload, v: null, t: ts, s: '1' },
      { o: 'timestamp', d: 'ASC', v: payload, t: ts, s: '1' },
      { o: 'sender', d: 'ASC', v: payload, t: ts, s: '1' },
      { o: 'timestamp', d: 'ASC', v: null, t: payload, s: '1' },
      { o: 'timestamp', d: 'ASC', v: null, t: ts, s: payload },
    ]
    for (const cursor of messageCursors) {
      const res = await get('/api/v1/monitor/messages', {
        cursor: b64(cursor),
        order_by: cursor.o === 'sender' ? 'sender' : 'timestamp',
      })
      t.ok(res.statusCode === 200 || isClear4xx(res.statusCode), `messages cursor ${label(cursor)}: ${res.statusCode}`)
      if (res.statusCode === 200) {
        const rows = res.json() as Message[]
        t.ok(rows.length <= TOTAL_A, 'no more rows than the tenant has')
        t.notOk(
          rows.some((m) => m.text === 'secret of b'),
          "never another tenant's row",
        )
      }
    }
    for (const cursor of [
      { t: payload, s: 's1', f: flow },
      { t: ts, s: payload, f: flow },
      { t: ts, s: 's1', f: payload },
    ]) {
      const res = await get('/api/v1/monitor/sessions', { cursor: b64(cursor) })
      t.ok(res.statusCode === 200 || isClear4xx(res.statusCode), `sessions cursor ${label(cursor)}: ${res.statusCode}`)
      if (res.statusCode === 200) t.notMatch(res.body, /secret of b|b1/, "never another tenant's session")
    }
  }
})

t.test('path parameters and bodies of rename, delete and edit', async (t) => {
  const [s2] = (await get('/api/v1/monitor/messages', { session_id: 's2' })).json() as Message[]
  if (!s2) throw new Error('no s2 message')
  for (const payload of PAYLOADS) {
    const path = encodeURIComponent(payload)
    const edit = await app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${path}`,
      headers,
      payload: { text: 'x' },
    })
    t.ok(isClear4xx(edit.statusCode), `PUT /messages/${label(payload)}: ${edit.statusCode}`)
    const del = await app.inject({ method: 'DELETE', url: '/api/v1/monitor/messages', headers, payload: [payload] })
    t.ok(isClear4xx(del.statusCode), `DELETE /messages [${label(payload)}]: ${del.statusCode}`)
    const delFlow = await app.inject({ method: 'DELETE', url: `/internal/flows/${path}/messages`, headers })
    t.ok(isClear4xx(delFlow.statusCode), `DELETE /internal/flows/${label(payload)}/messages: ${delFlow.statusCode}`)

    if (payload !== INJECTED_SESSION) {
      const rename = await app.inject({
        method: 'PATCH',
        url: `/api/v1/monitor/messages/session/${path}`,
        query: { new_session_id: 'renamed' },
        headers,
      })
      t.equal(rename.statusCode, 404, `rename of ${label(payload)}: not found`)
      const delSession = await app.inject({
        method: 'DELETE',
        url: `/api/v1/monitor/messages/session/${path}`,
        headers,
      })
      t.equal(delSession.statusCode, 204, `DELETE session ${label(payload)}: a no-op`)
      const bulk = await app.inject({
        method: 'DELETE',
        url: '/api/v1/monitor/messages/sessions',
        headers,
        payload: [payload],
      })
      t.equal(bulk.statusCode, 200)
      t.equal(bulk.json().deleted_count, 0, `bulk delete of ${label(payload)}: nothing`)
      const badFlow = await app.inject({
        method: 'PATCH',
        url: '/api/v1/monitor/messages/session/s1',
        query: { new_session_id: 'x', flow_id: payload },
        headers,
      })
      t.ok(isClear4xx(badFlow.statusCode), `rename with flow_id=${label(payload)}: ${badFlow.statusCode}`)
    }

    // s2 renamed to the payload and back: the new ID is stored exactly
    const to = await app.inject({
      method: 'PATCH',
      url: '/api/v1/monitor/messages/session/s2',
      query: { new_session_id: payload, flow_id: flow },
      headers,
    })
    if (payload === INJECTED_SESSION) {
      t.equal(to.statusCode, 409, 'renaming onto a session with messages is a conflict')
      continue
    }
    t.equal(to.statusCode, 200, `rename s2 → ${label(payload)}`)
    t.same(
      (to.json() as Message[]).map((m) => m.session_id),
      [payload],
      'renamed exactly',
    )
    const back = await app.inject({
      method: 'PATCH',
      url: `/api/v1/monitor/messages/session/${path}`,
      query: { new_session_id: 's2' },
      headers,
    })
    t.equal(back.statusCode, 200, `rename ${label(payload)} → s2`)

    // the text and sender of a message set to the payload, exactly
    const edited = await app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${s2.id}`,
      headers,
      payload: { text: payload, sender_name: payload },
    })
    t.equal(edited.statusCode, 200, `edit text to ${label(payload)}`)
    t.match(edited.json(), { text: payload, sender_name: payload })
  }
})

t.test('afterwards: every table there, every row of both tenants too', async (t) => {
  const tables = await app.db.query<{ name: string }>(
    'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1',
  )
  const names = tables.rows.map((r) => r.name)
  for (const table of ['messages', 'sessions']) t.ok(names.includes(table), `${table} exists`)
  const counts = await app.db.query<{ tenant_id: string; n: string }>(
    'SELECT tenant_id, count(*)::text AS n FROM messages GROUP BY tenant_id ORDER BY tenant_id',
  )
  t.same(counts.rows, [
    { tenant_id: 'tenant-a', n: String(TOTAL_A) },
    { tenant_id: 'tenant-b', n: String(TOTAL_B) },
  ])
  t.equal((await allMessages('tenant-a')).length, TOTAL_A)
  const b = await allMessages('tenant-b')
  t.same(
    b.map((m) => m.text),
    ['secret of b'],
  )
  const sessions = (await get('/api/v1/monitor/messages/sessions', { flow_id: flow })).json() as string[]
  t.same([...sessions].sort(), [INJECTED_SESSION, 's1', 's2'].sort(), 'the sessions are the ones stored')
})
