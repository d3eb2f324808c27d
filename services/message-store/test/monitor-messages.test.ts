import { randomBytes, randomUUID } from 'node:crypto'
import type { Message } from '@session-runtime/schemas'
import t, { type Test } from 'tap'
import {
  buildTestApp,
  cacheKind,
  history,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  type TestApp,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

type Msg = Message

type Query = Record<string, string | number>
type OrderBy = 'timestamp' | 'sender' | 'sender_name' | 'session_id'

// One app for the whole file (a PGlite start is slow); every test has tenants of its own.
const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})
const ORDER_BYS: OrderBy[] = ['timestamp', 'sender', 'sender_name', 'session_id']

async function storeMsgs(app: TestApp, tenant: string, inputs: ReturnType<typeof messageInput>[]): Promise<Msg[]> {
  return (await store(app, tenant, inputs)) as unknown as Msg[]
}

function toQuery(query: Query): Record<string, string> {
  return Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)]))
}

function list(app: TestApp, tenant: string, query: Query = {}) {
  return app.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(tenant),
    query: toQuery(query),
  })
}

/** One page; fails loudly on anything but a 200. */
async function listOk(app: TestApp, tenant: string, query: Query = {}) {
  const res = await list(app, tenant, query)
  if (res.statusCode !== 200) throw new Error(`list failed: ${res.statusCode} ${res.body}`)
  const cursor = res.headers['x-next-cursor']
  if (cursor !== undefined && typeof cursor !== 'string') throw new Error('x-next-cursor is not one string')
  return { messages: res.json() as Msg[], cursor }
}

/**
 * Follows X-Next-Cursor to the end. Checks that a cursor only comes with a full
 * page and that the page after a cursor is never empty (the header means more rows follow).
 */
async function pageAll(app: TestApp, tenant: string, query: Query, limit: number) {
  const seen: Msg[] = []
  let cursor: string | undefined
  let pages = 0
  for (;;) {
    const page = await listOk(app, tenant, { ...query, limit, ...(cursor ? { cursor } : {}) })
    pages++
    if (cursor !== undefined && page.messages.length === 0) throw new Error('a cursor led to an empty page')
    if (page.cursor !== undefined && page.messages.length !== limit) {
      throw new Error(`a page of ${page.messages.length} < ${limit} rows carried a cursor`)
    }
    seen.push(...page.messages)
    if (page.cursor === undefined) break
    cursor = page.cursor
    if (pages > 100_000) throw new Error('paging does not end')
  }
  return { messages: seen, pages }
}

const byteCmp = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))

/** The expected order of messages given in storage order: by column (bytewise), then storage order. */
function expectedOrder(stored: Msg[], orderBy: OrderBy, order: 'ASC' | 'DESC'): Msg[] {
  const asc = stored
    .map((m, i) => ({ m, i }))
    .sort((x, y) => (orderBy === 'timestamp' ? 0 : byteCmp(x.m[orderBy], y.m[orderBy])) || x.i - y.i)
    .map((x) => x.m)
  return order === 'ASC' ? asc : asc.reverse()
}

const ids = (messages: { id: string }[]) => messages.map((m) => m.id)

function assertError(t: Test, res: { statusCode: number; body: string }, status: number, code?: string) {
  t.equal(res.statusCode, status, `status ${status}: ${res.body.slice(0, 200)}`)
  const body = JSON.parse(res.body)
  t.same(Object.keys(body).sort(), ['code', 'detail'], 'the error envelope')
  t.type(body.detail, 'string')
  t.ok(body.detail.length > 0, 'detail is not empty')
  t.match(body.code, /^MSGSTORE_[A-Z_]+$/)
  if (code) t.equal(body.code, code)
  return body as { detail: string; code: string }
}

/**
 * Two tenants, two flows, two sessions, senders that sort differently bytewise
 * than in a natural-language collation ('Zed' < 'alice' < 'Ω bot').
 */
async function seed(app: TestApp) {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const plan: Array<[string, string, string, string, string, string]> = [
    [A, f1, 's1', 'User', 'User', 'q1'],
    [A, f1, 's1', 'Machine', 'AI', 'a1'],
    [A, f1, 's2', 'User', 'alice', 'hi'],
    [B, f1, 's1', 'User', 'User', 'b secret'],
    [A, f2, 's1', 'User', 'User', 'other flow q'],
    [A, f1, 's1', 'User', 'User', 'q2'],
    [A, f1, 's2', 'Machine', 'Zed', 'yo'],
    [A, f2, 's1', 'Machine', 'Ω bot', 'other flow a'],
    [A, f1, 's1', 'Machine', 'AI', 'a2'],
    [A, f2, 'S0', 'system', 'Ω bot', 'upper-case session'],
  ]
  const a: Msg[] = []
  const b: Msg[] = []
  // One message per request: storage order is timestamp order.
  for (const [tenant, flow_id, session_id, sender, sender_name, text] of plan) {
    const [m] = await storeMsgs(app, tenant, [messageInput({ flow_id, session_id, sender, sender_name, text })])
    ;(tenant === A ? a : b).push(m as Msg)
  }
  return { f1, f2, a, b }
}

t.test('GET messages: lists the caller’s messages, whole, oldest first', async (t) => {
  const { a, b } = await seed(app)
  const all = await listOk(app, A)
  t.same(all.messages, a, 'every message of tenant A, as stored, in storage order')
  t.equal(all.cursor, undefined, 'no cursor when nothing follows')
  const times = all.messages.map((m) => m.timestamp)
  t.same(times, [...times].sort(), 'timestamps ascend')
  for (const m of all.messages) t.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  const other = await listOk(app, B)
  t.same(other.messages, b, 'tenant B sees only its own message')
  const none = await listOk(app, `${A}-c`)
  t.same(none.messages, [], 'a tenant without messages sees none')
})

t.test('GET messages: every filter, alone and combined', async (t) => {
  const { f1, f2, a } = await seed(app)
  const cases: Array<[Query, (m: Msg) => boolean]> = [
    [{ flow_id: f1 }, (m) => m.flow_id === f1],
    [{ flow_id: f2 }, (m) => m.flow_id === f2],
    [{ flow_id: randomUUID() }, () => false],
    [{ session_id: 's1' }, (m) => m.session_id === 's1'],
    [{ session_id: 'S1' }, () => false],
    [{ session_id: 'S0' }, (m) => m.session_id === 'S0'],
    [{ sender: 'Machine' }, (m) => m.sender === 'Machine'],
    [{ sender: 'machine' }, () => false],
    [{ sender_name: 'Ω bot' }, (m) => m.sender_name === 'Ω bot'],
    [{ sender_name: 'AI' }, (m) => m.sender_name === 'AI'],
    [{ flow_id: f1, session_id: 's1' }, (m) => m.flow_id === f1 && m.session_id === 's1'],
    [
      { flow_id: f1, session_id: 's1', sender: 'User' },
      (m) => m.flow_id === f1 && m.session_id === 's1' && m.sender === 'User',
    ],
    [{ session_id: 's1', sender_name: 'Ω bot' }, (m) => m.session_id === 's1' && m.sender_name === 'Ω bot'],
    [{ flow_id: f2, sender: 'Machine', sender_name: 'AI' }, () => false],
  ]
  for (const [query, keep] of cases) {
    const expected = a.filter(keep)
    const got = await listOk(app, A, query)
    t.same(ids(got.messages), ids(expected), `filter ${JSON.stringify(query)}`)
  }
  t.not(a.filter((m) => m.flow_id === f1 && m.session_id === 's1').length, 0, 'the data set is not trivial')
  const foreign = await listOk(app, B, { flow_id: f2 })
  t.same(foreign.messages, [], 'another tenant filtering on A’s flow sees nothing')
})

t.test('GET messages: order_by × order, with full and paged reads', async (t) => {
  const { a } = await seed(app)
  for (const orderBy of ORDER_BYS) {
    for (const order of ['ASC', 'DESC'] as const) {
      const expected = ids(expectedOrder(a, orderBy, order))
      // order_by=timestamp is the default: leave it out then.
      const query: Query = orderBy === 'timestamp' ? { order } : { order_by: orderBy, order }
      const whole = await listOk(app, A, query)
      t.same(ids(whole.messages), expected, `${orderBy} ${order}`)
      for (const limit of [1, 3, 4]) {
        const paged = await pageAll(app, A, query, limit)
        t.same(ids(paged.messages), expected, `${orderBy} ${order} in pages of ${limit}`)
        t.equal(paged.pages, Math.ceil(a.length / limit), 'no empty extra page')
      }
      const offset = await listOk(app, A, { ...query, offset: 3, limit: 4 })
      t.same(ids(offset.messages), expected.slice(3, 7), `${orderBy} ${order} offset 3 limit 4`)
      t.ok(offset.cursor, 'more rows follow the offset page')
      const tail = await listOk(app, A, { ...query, offset: expected.length - 2, limit: 4 })
      t.same(ids(tail.messages), expected.slice(-2), 'the last rows by offset')
      t.equal(tail.cursor, undefined, 'no cursor on the last page')
    }
  }
  const byDefault = await listOk(app, A, { order: 'DESC' })
  t.same(ids(byDefault.messages), ids(a).reverse(), 'DESC alone: newest first by timestamp')
})

t.test(
  'GET messages: limit defaults to 100, allows 1000, and the cursor is present iff more rows follow',
  async (t) => {
    const flow_id = randomUUID()
    const stored = await storeMsgs(
      app,
      A,
      Array.from({ length: 1000 }, (_, i) => messageInput({ flow_id, session_id: 'big', text: `m${i}` })),
    )
    stored.push(...(await storeMsgs(app, A, [messageInput({ flow_id, session_id: 'big', text: 'm1000' })])))

    const first = await listOk(app, A)
    t.equal(first.messages.length, 100, 'default limit is 100')
    t.same(ids(first.messages), ids(stored.slice(0, 100)))
    t.type(first.cursor, 'string')

    const max = await listOk(app, A, { limit: 1000 })
    t.equal(max.messages.length, 1000, 'limit 1000 is allowed')
    t.same(ids(max.messages), ids(stored.slice(0, 1000)))
    t.type(max.cursor, 'string', 'one more row follows')
    const rest = await listOk(app, A, { limit: 1000, cursor: max.cursor as string })
    t.same(ids(rest.messages), [stored[1000]?.id])
    t.equal(rest.cursor, undefined, 'nothing follows the last row')

    const exact = await listOk(app, A, { limit: 1000, offset: 1 })
    t.equal(exact.messages.length, 1000)
    t.equal(exact.cursor, undefined, 'a page that ends exactly at the last row has no cursor')

    const res = await list(app, A, { limit: 1001 })
    assertError(t, res, 422, 'MSGSTORE_VALIDATION')
    t.match(res.json().detail, /limit/)
  },
)

t.test('GET messages: cursors are bound to their ordering; malformed cursors are 400s', async (t) => {
  await seed(app)
  const asc = await listOk(app, A, { limit: 2 })
  t.type(asc.cursor, 'string')
  const cursor = asc.cursor as string
  const others: Query[] = [
    { order_by: 'sender' },
    { order_by: 'sender_name' },
    { order_by: 'session_id' },
    { order: 'DESC' },
  ]
  for (const other of others) {
    const res = await list(app, A, { limit: 2, cursor, ...other })
    const body = assertError(t, res, 400, 'MSGSTORE_INVALID_CURSOR')
    t.match(body.detail, /ordering/, `refused with ${JSON.stringify(other)}`)
  }
  const bySender = await listOk(app, A, { limit: 2, order_by: 'sender', order: 'DESC' })
  assertError(t, await list(app, A, { limit: 2, cursor: bySender.cursor as string }), 400, 'MSGSTORE_INVALID_CURSOR')
  assertError(
    t,
    await list(app, A, { limit: 2, order_by: 'sender', cursor: bySender.cursor as string }),
    400,
    'MSGSTORE_INVALID_CURSOR',
  )
  t.equal((await list(app, A, { limit: 2, cursor })).statusCode, 200, 'the same cursor works with its own ordering')

  const enc = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const good = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>
  const malformed: Array<[string, string, Query?]> = [
    ['not base64url', 'not a cursor!'],
    ['base64 of garbage', Buffer.from('garbage').toString('base64url')],
    ['a JSON array', enc([1, 2])],
    ['JSON null', enc(null)],
    ['a JSON string', enc('x')],
    ['an empty object', enc({})],
    ['a missing field', enc({ ...good, s: undefined })],
    ['an extra field', enc({ ...good, x: '1' })],
    ['a numeric seq', enc({ ...good, s: 12 })],
    ['a non-digit seq', enc({ ...good, s: '1; DROP TABLE messages' })],
    ['a seq beyond bigint', enc({ ...good, s: '9999999999999999999' })],
    ['a bad timestamp', enc({ ...good, t: 'yesterday' })],
    ['a timestamp Date.parse accepts but Postgres does not', enc({ ...good, t: '1' })],
    ['year zero', enc({ ...good, t: '0000-01-01T00:00:00.000000Z' })],
    ['a NUL in the timestamp', enc({ ...good, t: '2024-01-01T00:00:00.000000Z\u0000' })],
    [
      'a NUL in the sort value',
      enc({ o: 'sender', d: 'ASC', v: 'a\u0000', t: good.t, s: good.s }),
      { order_by: 'sender' },
    ],
    [
      'a null sort value where one is needed',
      enc({ o: 'sender', d: 'ASC', v: null, t: good.t, s: good.s }),
      { order_by: 'sender' },
    ],
  ]
  for (const [name, bad, extra] of malformed) {
    const res = await list(app, A, { limit: 2, ...extra, cursor: bad })
    t.equal(res.statusCode, 400, `${name}: 400, got ${res.statusCode} ${res.body}`)
    if (res.statusCode === 400) t.equal(res.json().code, 'MSGSTORE_INVALID_CURSOR', name)
  }
})

t.test('GET messages: a cursor stays valid after the row it points at is deleted', async (t) => {
  const flow_id = randomUUID()
  await storeMsgs(
    app,
    A,
    Array.from({ length: 16 }, (_, i) =>
      messageInput({ flow_id, session_id: 'c', sender: i % 2 ? 'Machine' : 'User', text: `m${i}` }),
    ),
  )
  const del = async (gone: string[]) => {
    const res = await app.inject({
      method: 'DELETE',
      url: '/api/v1/monitor/messages',
      headers: internalHeaders(A),
      payload: gone,
    })
    t.equal(res.statusCode, 204)
  }
  for (const [orderBy, order] of [
    ['timestamp', 'ASC'],
    ['timestamp', 'DESC'],
    ['sender', 'ASC'],
    ['sender_name', 'DESC'],
  ] as const) {
    const current = (await listOk(app, A, { order_by: orderBy, order, limit: 1000 })).messages
    const expected = ids(current)
    const first = await listOk(app, A, { order_by: orderBy, order, limit: 3 })
    t.same(ids(first.messages), expected.slice(0, 3))
    // Delete the row the cursor names and the row after it.
    await del([expected[2] as string, expected[3] as string])
    const next = await listOk(app, A, { order_by: orderBy, order, limit: 3, cursor: first.cursor as string })
    t.same(ids(next.messages), expected.slice(4, 7), `${orderBy} ${order}: continues after the deleted row`)
    const left = new Set(ids((await listOk(app, A, { limit: 1000 })).messages))
    t.notOk(left.has(expected[2] as string), 'the row is really gone')
  }
})

t.test('ordering ties: one batch keeps insertion order; a question and its answer never swap', async (t) => {
  const flow_id = randomUUID()
  const batch = await storeMsgs(
    app,
    A,
    Array.from({ length: 40 }, (_, i) =>
      messageInput({
        flow_id,
        session_id: 'batch',
        sender: i % 2 ? 'Machine' : 'User',
        sender_name: i % 2 ? 'AI' : 'User',
        text: `b${i}`,
      }),
    ),
  )
  const inOrder = await listOk(app, A, { session_id: 'batch', limit: 1000 })
  t.same(ids(inOrder.messages), ids(batch), 'one batch reads back in insertion order')
  const times = inOrder.messages.map((m) => m.timestamp)
  t.same(times, [...times].sort(), 'timestamps never go backwards')
  t.same(ids((await pageAll(app, A, { session_id: 'batch' }, 7)).messages), ids(batch))
  t.same(ids((await pageAll(app, A, { session_id: 'batch', order: 'DESC' }, 7)).messages), ids(batch).reverse())

  // Questions and answers stored one request after another, as the run-service does.
  const qa: Msg[] = []
  for (let i = 0; i < 15; i++) {
    qa.push(...(await storeMsgs(app, A, [messageInput({ flow_id, session_id: 'qa', text: `q${i}` })])))
    const answer = messageInput({ flow_id, session_id: 'qa', sender: 'Machine', sender_name: 'AI', text: `a${i}` })
    const res = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: internalHeaders(A),
      payload: answer,
    })
    t.equal(res.statusCode, 201)
    qa.push(res.json())
  }
  const read = await listOk(app, A, { session_id: 'qa', limit: 1000 })
  t.same(
    read.messages.map((m) => m.text),
    qa.map((m) => m.text),
  )
  const desc = await pageAll(app, A, { session_id: 'qa', order: 'DESC' }, 4)
  t.same(ids(desc.messages), ids(qa).reverse())
  const h = await history(app, A, { flow_id, session_id: 'qa', limit: 1000 })
  t.same(ids(h), ids(qa), 'the history agrees')
})

t.test('ordering ties: equal timestamps are ordered by insertion, totally and stably, across pages', async (t) => {
  const flow_id = randomUUID()
  const stored = await storeMsgs(
    app,
    A,
    Array.from({ length: 23 }, (_, i) =>
      messageInput({
        flow_id,
        session_id: i < 12 ? 'tie-a' : 'tie-b',
        sender: ['User', 'Machine', 'AI'][i % 3] as string,
        text: `t${i}`,
      }),
    ),
  )
  // Make every timestamp equal (as when the clock does not move between rows).
  await app.db.query(`UPDATE messages SET ts = '2024-05-05T05:05:05.123456Z' WHERE tenant_id = $1`, [A])
  const all = await listOk(app, A, { limit: 1000 })
  t.ok(
    all.messages.every((m) => m.timestamp === '2024-05-05T05:05:05.123456Z'),
    'the timestamps really tie',
  )
  for (const orderBy of ORDER_BYS) {
    for (const order of ['ASC', 'DESC'] as const) {
      const expected = ids(expectedOrder(stored, orderBy, order))
      t.same(
        ids((await listOk(app, A, { order_by: orderBy, order, limit: 1000 })).messages),
        expected,
        `${orderBy} ${order}`,
      )
      for (const limit of [2, 5]) {
        const paged = await pageAll(app, A, { order_by: orderBy, order }, limit)
        t.same(ids(paged.messages), expected, `${orderBy} ${order} in pages of ${limit}`)
      }
    }
  }
  const again = await listOk(app, A, { limit: 1000 })
  t.same(ids(again.messages), ids(all.messages), 'the same order on every read')
})

t.test('pagination over one session of 10,000 messages visits each exactly once', async (t) => {
  const flow_id = randomUUID()
  const stored: string[] = []
  for (let chunk = 0; chunk < 10; chunk++) {
    const part = await storeMsgs(
      app,
      A,
      Array.from({ length: 1000 }, (_, i) =>
        messageInput({
          flow_id,
          session_id: 'ten-thousand',
          sender: i % 2 ? 'Machine' : 'User',
          text: `${chunk}-${i}`,
        }),
      ),
    )
    stored.push(...ids(part))
  }
  // Noise in another session and tenant, which the filter must keep out.
  await storeMsgs(app, A, [messageInput({ flow_id, session_id: 'other' })])
  await storeMsgs(app, B, [messageInput({ flow_id, session_id: 'ten-thousand' })])

  const check = (got: string[], expected: string[], name: string) => {
    t.equal(got.length, expected.length, `${name}: count`)
    t.equal(new Set(got).size, got.length, `${name}: no message twice`)
    t.ok(
      got.every((id, i) => id === expected[i]),
      `${name}: exactly the stored order`,
    )
  }
  const asc = await pageAll(app, A, { session_id: 'ten-thousand' }, 1000)
  t.equal(asc.pages, 10, 'ten full pages, the last one without a cursor')
  check(ids(asc.messages), stored, 'ASC, limit 1000')
  const desc = await pageAll(app, A, { session_id: 'ten-thousand', order: 'DESC' }, 1000)
  t.equal(desc.pages, 10)
  check(ids(desc.messages), [...stored].reverse(), 'DESC, limit 1000')
  const small = await pageAll(app, A, { session_id: 'ten-thousand' }, 333)
  t.equal(small.pages, 31)
  check(ids(small.messages), stored, 'ASC, limit 333')
  const smallDesc = await pageAll(app, A, { session_id: 'ten-thousand', order: 'DESC', order_by: 'sender' }, 777)
  // 'Machine' (odd) sorts before 'User' (even); DESC reverses the whole order.
  const bySender = [...stored.filter((_, i) => i % 2 === 1), ...stored.filter((_, i) => i % 2 === 0)].reverse()
  check(ids(smallDesc.messages), bySender, 'DESC by sender, limit 777')
})

t.test('PUT messages/{id}: a text edit marks the message edited and keeps the rest', async (t) => {
  const flow_id = randomUUID()
  const [q, a] = await storeMsgs(app, A, [
    messageInput({ flow_id, session_id: 'edit', text: 'question' }),
    messageInput({
      flow_id,
      session_id: 'edit',
      sender: 'Machine',
      sender_name: 'AI',
      text: 'answer',
      properties: { text_color: 'red', source: { id: 'n1', display_name: 'Chat', source: 'model' } },
      files: ['f.png'],
    }),
  ])
  if (!q || !a) throw new Error('store failed')
  // Fill the history cache first: the edit must be visible there too.
  t.same(ids(await history(app, A, { flow_id, session_id: 'edit' })), [q.id, a.id])

  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${a.id}`,
    headers: internalHeaders(A),
    payload: { text: 'better answer' },
  })
  t.equal(res.statusCode, 200)
  const edited = res.json() as Msg
  t.same(
    edited,
    {
      ...a,
      text: 'better answer',
      edit: true,
      properties: { ...a.properties, edited: true },
    },
    'text, edit and properties.edited change; id, timestamp and the rest do not',
  )
  t.equal(a.edit, false, 'it was not edited before')
  const listed = await listOk(app, A, { session_id: 'edit' })
  t.same(listed.messages, [q, edited], 'the list shows the edit, in place')
  const h = await history(app, A, { flow_id, session_id: 'edit' })
  t.same(
    h.map((m) => m.text),
    ['question', 'better answer'],
    'the history shows the edit',
  )

  // Text and edit: false together: changing the text always marks it edited.
  const both = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${q.id}`,
    headers: internalHeaders(A),
    payload: { text: 'question?', edit: false, properties: { icon: 'x' } },
  })
  t.equal(both.statusCode, 200)
  t.equal(both.json().edit, true)
  t.same(both.json().properties, { icon: 'x', edited: true }, 'new properties, marked edited')
})

t.test('PUT messages/{id}: other fields, without marking the message edited', async (t) => {
  const flow_id = randomUUID()
  const [m, n] = await storeMsgs(app, A, [
    messageInput({ flow_id, session_id: 'fields', text: 'keep me' }),
    messageInput({ flow_id, session_id: 'fields', text: 'second' }),
  ])
  if (!m || !n) throw new Error('store failed')
  t.equal((await history(app, A, { flow_id, session_id: 'fields' })).length, 2)
  const put = (id: string, payload: unknown, tenant = A) =>
    app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${id}`,
      headers: internalHeaders(tenant),
      payload: payload as never,
    })

  const changes = {
    sender: 'Machine',
    sender_name: 'Bot 9',
    files: ['a.txt', 'b.txt'],
    properties: { background_color: '#fff', state: 'complete' },
  }
  const res = await put(m.id, changes)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { ...m, ...changes }, 'exactly the given fields change')
  t.equal(res.json().edit, false, 'not marked edited without a text change')

  const noop = await put(m.id, {})
  t.equal(noop.statusCode, 200)
  t.same(noop.json(), res.json(), 'an empty update changes nothing')

  const flagged = await put(m.id, { edit: true })
  t.equal(flagged.json().edit, true, 'edit can be set explicitly')
  t.same(flagged.json().properties, changes.properties, 'without touching properties')

  const asError = await put(n.id, { error: true })
  t.equal(asError.statusCode, 200)
  t.equal(asError.json().error, true)
  t.same(
    ids(await history(app, A, { flow_id, session_id: 'fields' })),
    [m.id],
    'a message turned into an error leaves the history',
  )
})

t.test('PUT messages/{id}: session_id moves a message to another session', async (t) => {
  const flow_id = randomUUID()
  const [m1, m2, m3] = await storeMsgs(app, A, [
    messageInput({ flow_id, session_id: 'from', text: 'one' }),
    messageInput({ flow_id, session_id: 'from', text: 'two' }),
    messageInput({ flow_id, session_id: 'to', text: 'three' }),
  ])
  if (!m1 || !m2 || !m3) throw new Error('store failed')
  // Cache both histories before the move.
  t.same(ids(await history(app, A, { flow_id, session_id: 'from' })), [m1.id, m2.id])
  t.same(ids(await history(app, A, { flow_id, session_id: 'to' })), [m3.id])
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${m1.id}`,
    headers: internalHeaders(A),
    payload: { session_id: 'to' },
  })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { ...m1, session_id: 'to' }, 'moved, nothing else changed (not even edit)')
  t.same(ids((await listOk(app, A, { session_id: 'from' })).messages), [m2.id])
  t.same(ids((await listOk(app, A, { session_id: 'to' })).messages), [m1.id, m3.id], 'ordered by its timestamp')
  t.same(ids(await history(app, A, { flow_id, session_id: 'from' })), [m2.id], 'old history, after the move')
  t.same(ids(await history(app, A, { flow_id, session_id: 'to' })), [m1.id, m3.id], 'new history, after the move')

  const fresh = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${m2.id}`,
    headers: internalHeaders(A),
    payload: { session_id: 'brand new' },
  })
  t.equal(fresh.statusCode, 200)
  t.same(ids(await history(app, A, { flow_id, session_id: 'brand new' })), [m2.id], 'into a session that did not exist')
  t.same(await history(app, A, { flow_id, session_id: 'from' }), [], 'the old session is empty')
})

t.test('PUT messages/{id}: 404 for unknown and foreign IDs, 422 for bad input', async (t) => {
  const flow_id = randomUUID()
  const [m] = await storeMsgs(app, A, [messageInput({ flow_id, session_id: 'mine', text: 'original' })])
  if (!m) throw new Error('store failed')
  const put = (id: string, payload: unknown, tenant = A) =>
    app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${id}`,
      headers: internalHeaders(tenant),
      payload: payload as never,
    })

  const unknown = assertError(t, await put(randomUUID(), { text: 'x' }), 404, 'MSGSTORE_MESSAGE_NOT_FOUND')
  t.equal(unknown.detail, 'Message not found')
  const foreign = assertError(t, await put(m.id, { text: 'hacked', session_id: 'stolen' }, B), 404)
  t.same(foreign, unknown, 'a foreign message looks exactly like a missing one')

  assertError(t, await put('not-a-uuid', { text: 'x' }), 422, 'MSGSTORE_VALIDATION')
  assertError(t, await put(`${m.id}0`, { text: 'x' }), 422, 'MSGSTORE_VALIDATION')
  const unknownField = assertError(t, await put(m.id, { text: 'x', timestamp: 'now' }), 422, 'MSGSTORE_VALIDATION')
  t.match(unknownField.detail, /additional|timestamp/)
  assertError(t, await put(m.id, { text: 'x', id: randomUUID() }), 422, 'MSGSTORE_VALIDATION')
  assertError(t, await put(m.id, { flow_id: randomUUID() }), 422, 'MSGSTORE_VALIDATION')

  const after = await listOk(app, A)
  t.same(after.messages, [m], 'nothing changed')
  t.same((await listOk(app, B)).messages, [], 'and nothing appeared for tenant B')
})

t.test('DELETE messages: by IDs, the caller’s own only', async (t) => {
  const flow_id = randomUUID()
  const mine = await storeMsgs(
    app,
    A,
    Array.from({ length: 5 }, (_, i) => messageInput({ flow_id, session_id: 'd', text: `a${i}` })),
  )
  const theirs = await storeMsgs(app, B, [messageInput({ flow_id, session_id: 'd', text: 'b0' })])
  const [m0, m1, m2, m3, m4] = ids(mine) as [string, string, string, string, string]
  const [b0] = ids(theirs) as [string]
  t.same(ids(await history(app, A, { flow_id, session_id: 'd' })), ids(mine), 'history cached before the delete')
  const del = (payload: unknown, tenant = A) =>
    app.inject({
      method: 'DELETE',
      url: '/api/v1/monitor/messages',
      headers: internalHeaders(tenant),
      payload: payload as never,
    })

  const res = await del([m1, m3])
  t.equal(res.statusCode, 204)
  t.equal(res.body, '', 'no body')
  t.same(ids((await listOk(app, A)).messages), [m0, m2, m4])
  t.same(ids(await history(app, A, { flow_id, session_id: 'd' })), [m0, m2, m4], 'the history reflects the delete')

  const foreign = await del([m0], B)
  t.equal(foreign.statusCode, 204, 'foreign IDs: 204')
  t.same(ids((await listOk(app, A)).messages), [m0, m2, m4], 'and ignored')

  const mixed = await del([b0, m2, randomUUID(), m1])
  t.equal(mixed.statusCode, 204)
  t.same(ids((await listOk(app, A)).messages), [m0, m4], 'own deleted; foreign, unknown and already deleted ignored')
  t.same(ids((await listOk(app, B)).messages), [b0], 'tenant B keeps its message')

  const bad = await del([m0, 'not-a-uuid'])
  assertError(t, bad, 422, 'MSGSTORE_VALIDATION')
  assertError(t, await del([m0, 42]), 422, 'MSGSTORE_VALIDATION')
  assertError(t, await del({ ids: [m0] }), 422, 'MSGSTORE_VALIDATION')
  t.same(ids((await listOk(app, A)).messages), [m0, m4], 'a refused request deletes nothing')

  t.equal((await del([])).statusCode, 204, 'an empty list is a no-op')
  t.same(ids((await listOk(app, A)).messages), [m0, m4])
})
