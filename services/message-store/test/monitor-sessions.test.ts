import { randomBytes, randomUUID } from 'node:crypto'
import type { Message } from '@session-runtime/schemas'
import t, { type Test } from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

type Msg = Message

interface Summary {
  session_id: string
  flow_id: string
  message_count: number
  first_timestamp: string
  last_timestamp: string
  last_text: string
  metadata: Record<string, string>
  usage: { input_tokens: number; output_tokens: number; total_tokens: number }
}

/** The usage of a session whose messages carry none. */
const NO_USAGE = { input_tokens: 0, output_tokens: 0, total_tokens: 0 }

type Query = Record<string, string | number>

// One app for the whole file (a PGlite start is slow); every test has tenants of its own.
const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

const toQuery = (query: Query) => Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)]))
const ids = (messages: { id: string }[]) => messages.map((m) => m.id)
const path = (sessionId: string) => encodeURIComponent(sessionId)

/** Stores messages one request each, so that storage order is timestamp order. */
async function storeEach(tenant: string, inputs: ReturnType<typeof messageInput>[]): Promise<Msg[]> {
  const out: Msg[] = []
  for (const input of inputs) out.push(...((await store(app, tenant, [input])) as unknown as Msg[]))
  return out
}

function inject(
  tenant: string,
  method: 'GET' | 'PATCH' | 'DELETE' | 'PUT',
  url: string,
  query: Query = {},
  payload?: unknown,
) {
  return app.inject({
    method,
    url,
    headers: internalHeaders(tenant),
    query: toQuery(query),
    ...(payload === undefined ? {} : { payload: payload as never }),
  })
}

async function ok<T>(res: { statusCode: number; body: string; json: () => unknown }, status = 200): Promise<T> {
  if (res.statusCode !== status) throw new Error(`expected ${status}, got ${res.statusCode} ${res.body}`)
  return res.json() as T
}

const messages = async (tenant: string, query: Query = {}) =>
  ok<Msg[]>(await inject(tenant, 'GET', '/api/v1/monitor/messages', { limit: 1000, ...query }))
const sessionIds = async (tenant: string, query: Query = {}) =>
  ok<string[]>(await inject(tenant, 'GET', '/api/v1/monitor/messages/sessions', query))

async function summaries(tenant: string, query: Query = {}) {
  const res = await inject(tenant, 'GET', '/api/v1/monitor/sessions', query)
  const body = await ok<Summary[]>(res)
  const cursor = res.headers['x-next-cursor']
  return { body, cursor: typeof cursor === 'string' ? cursor : undefined }
}

/** Follows the cursor to the end; a cursor must come with a full page and lead to a non-empty one. */
async function allSummaries(tenant: string, query: Query, limit: number) {
  const seen: Summary[] = []
  let cursor: string | undefined
  let pages = 0
  for (;;) {
    const page = await summaries(tenant, { ...query, limit, ...(cursor ? { cursor } : {}) })
    pages++
    if (cursor && page.body.length === 0) throw new Error('a cursor led to an empty page')
    if (page.cursor && page.body.length !== limit) throw new Error('a short page carried a cursor')
    seen.push(...page.body)
    if (!page.cursor) return { seen, pages }
    cursor = page.cursor
    if (pages > 10_000) throw new Error('paging does not end')
  }
}

const byteCmp = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))

/** The summaries the stored messages imply: newest activity first, ties by session ID then flow. */
function expectedSummaries(stored: Msg[]): Summary[] {
  const groups = new Map<string, Msg[]>()
  for (const m of stored) {
    const key = `${m.flow_id}\u0000${m.session_id}`
    groups.set(key, [...(groups.get(key) ?? []), m])
  }
  return [...groups.values()]
    .map((ms) => ({
      session_id: (ms[0] as Msg).session_id,
      flow_id: (ms[0] as Msg).flow_id,
      message_count: ms.length,
      first_timestamp: (ms[0] as Msg).timestamp,
      last_timestamp: (ms.at(-1) as Msg).timestamp,
      last_text: (ms.at(-1) as Msg).text,
      metadata: {},
      positive_feedback_count: 0,
      negative_feedback_count: 0,
      usage: NO_USAGE,
    }))
    .sort(
      (x, y) =>
        byteCmp(y.last_timestamp, x.last_timestamp) ||
        byteCmp(x.session_id, y.session_id) ||
        byteCmp(x.flow_id, y.flow_id),
    )
}

function assertError(t: Test, res: { statusCode: number; body: string }, status: number, code?: string) {
  t.equal(res.statusCode, status, `status ${status}: ${res.body.slice(0, 200)}`)
  const body = JSON.parse(res.body)
  t.same(Object.keys(body).sort(), ['code', 'detail'], 'the error envelope')
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, 'a detail')
  t.match(body.code, /^MSGSTORE_[A-Z_]+$/)
  if (code) t.equal(body.code, code)
  return body as { detail: string; code: string }
}

t.test('GET messages/sessions: distinct session IDs, by flow, per tenant', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 's1' }),
    messageInput({ flow_id: f1, session_id: 's1' }),
    messageInput({ flow_id: f1, session_id: 's2' }),
    messageInput({ flow_id: f2, session_id: 's1' }),
    messageInput({ flow_id: f2, session_id: 'S3' }),
  ])
  await storeEach(B, [
    messageInput({ flow_id: f1, session_id: 's1' }),
    messageInput({ flow_id: f1, session_id: 'b-only' }),
  ])
  const all = await sessionIds(A)
  t.same([...all].sort(), ['S3', 's1', 's2'], 'each session once, though s1 is in two flows')
  t.equal(new Set(all).size, all.length, 'no duplicates')
  t.same([...(await sessionIds(A, { flow_id: f1 }))].sort(), ['s1', 's2'])
  t.same([...(await sessionIds(A, { flow_id: f2 }))].sort(), ['S3', 's1'])
  t.same(await sessionIds(A, { flow_id: randomUUID() }), [])
  t.same([...(await sessionIds(B))].sort(), ['b-only', 's1'], 'tenant B sees its own sessions only')
  t.same(await sessionIds(`${A}-nobody`), [])
  assertError(t, await inject(A, 'GET', '/api/v1/monitor/messages/sessions', { flow_id: 'nope' }), 422)

  // A session whose messages are all gone is no longer listed.
  const s2 = await messages(A, { session_id: 's2' })
  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, ids(s2))).statusCode, 204)
  t.same([...(await sessionIds(A))].sort(), ['S3', 's1'])
  t.same([...(await sessionIds(A, { flow_id: f1 }))].sort(), ['s1'])
})

t.test('GET sessions: summaries, most recently active first, tenant scoped', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const stored = await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 'old', text: 'first question' }),
    messageInput({ flow_id: f1, session_id: 'old', sender: 'Machine', sender_name: 'AI', text: 'first answer' }),
    messageInput({ flow_id: f1, session_id: 'middle', text: 'middle question' }),
    messageInput({ flow_id: f2, session_id: 'old', text: 'other flow' }),
    messageInput({ flow_id: f1, session_id: 'new', sender: 'Machine', sender_name: 'AI', text: 'bot speaks first' }),
    messageInput({ flow_id: f1, session_id: 'new', text: 'user speaks last' }),
    messageInput({ flow_id: f1, session_id: 'middle', sender: 'Machine', sender_name: 'AI', text: 'middle answer' }),
  ])
  await storeEach(B, [messageInput({ flow_id: f1, session_id: 'old', text: 'tenant b text' })])

  const { body, cursor } = await summaries(A)
  t.same(body, expectedSummaries(stored), 'counts, timestamps, last text and order')
  t.same(
    body.map((s) => `${s.session_id}/${s.flow_id === f1 ? 'f1' : 'f2'}:${s.message_count}:${s.last_text}`),
    ['middle/f1:2:middle answer', 'new/f1:2:user speaks last', 'old/f2:1:other flow', 'old/f1:2:first answer'],
    'the same, spelled out',
  )
  t.equal(cursor, undefined, 'no cursor: nothing follows')
  t.same((await summaries(A, { flow_id: f2 })).body, expectedSummaries(stored.filter((m) => m.flow_id === f2)))
  t.same((await summaries(A, { flow_id: randomUUID() })).body, [])
  const theirs = (await summaries(B)).body
  t.equal(theirs.length, 1, 'tenant B sees one session')
  t.equal(theirs[0]?.last_text, 'tenant b text')
  t.equal(theirs[0]?.message_count, 1)

  // New activity moves a session to the top.
  const more = await storeEach(A, [messageInput({ flow_id: f1, session_id: 'old', text: 'back again' })])
  const after = (await summaries(A)).body
  t.same(after, expectedSummaries([...stored, ...more]))
  t.equal(after[0]?.session_id, 'old')
  t.equal(after[0]?.last_text, 'back again')
})

t.test('GET sessions: limit 1–500, default 50, cursor paging visits each session once', async (t) => {
  const flow_id = randomUUID()
  const stored: Msg[] = []
  // 130 sessions, written in batches: messages of one batch are close in time.
  for (let batch = 0; batch < 13; batch++) {
    const inputs = Array.from({ length: 10 }, (_, i) =>
      messageInput({ flow_id, session_id: `s-${String(batch * 10 + i).padStart(3, '0')}`, text: `t${batch}.${i}` }),
    )
    stored.push(...((await store(app, A, inputs)) as unknown as Msg[]))
  }
  const expected = expectedSummaries(stored)
  t.equal(expected.length, 130)

  const first = await summaries(A)
  t.equal(first.body.length, 50, 'default limit is 50')
  t.same(first.body, expected.slice(0, 50))
  t.type(first.cursor, 'string')
  const one = await summaries(A, { limit: 1 })
  t.same(one.body, expected.slice(0, 1))
  t.same((await summaries(A, { limit: 500 })).body, expected, 'limit 500 is allowed')
  t.equal((await summaries(A, { limit: 500 })).cursor, undefined)
  t.equal((await summaries(A, { limit: 130 })).cursor, undefined, 'a page ending on the last session: no cursor')
  t.type((await summaries(A, { limit: 129 })).cursor, 'string')

  for (const limit of [7, 50, 65]) {
    const { seen, pages } = await allSummaries(A, {}, limit)
    t.same(seen, expected, `pages of ${limit}: every session once, in order`)
    t.equal(pages, Math.ceil(130 / limit))
  }
  for (const bad of [0, -1, 501, 'abc', 1.5]) {
    assertError(t, await inject(A, 'GET', '/api/v1/monitor/sessions', { limit: bad }), 422, 'MSGSTORE_VALIDATION')
  }
  for (const bad of ['garbage!', Buffer.from('{}').toString('base64url'), first.cursor?.slice(0, -2) ?? '']) {
    const res = await inject(A, 'GET', '/api/v1/monitor/sessions', { cursor: bad })
    assertError(t, res, 400, 'MSGSTORE_INVALID_CURSOR')
  }
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const good = JSON.parse(Buffer.from(first.cursor as string, 'base64url').toString('utf8'))
  for (const bad of [
    { ...good, f: '-'.repeat(36) },
    { ...good, t: '1' },
    { ...good, t: '2024-02-30T00:00:00.000000Z' },
    { ...good, s: 'x\u0000' },
    { ...good, s: 5 },
  ]) {
    const res = await inject(A, 'GET', '/api/v1/monitor/sessions', { cursor: enc(bad) })
    assertError(t, res, 400, 'MSGSTORE_INVALID_CURSOR')
  }
})

t.test('GET sessions: equal activity times are ordered by session ID, and pages never skip a tie', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const names = ['b', 'a', 'B', 'c d', 'a b', 'é', 'z', 'A']
  const stored = await store(app, A, [
    ...names.map((session_id) => messageInput({ flow_id: f1, session_id })),
    messageInput({ flow_id: f2, session_id: 'a' }),
  ])
  t.equal(stored.length, names.length + 1)
  await app.db.query(`UPDATE sessions SET last_ts = '2024-01-01T00:00:00.000000Z' WHERE tenant_id = $1`, [A])
  const sorted = [...names].sort(byteCmp)
  const key = (s: Summary) => `${s.session_id}|${s.flow_id}`
  const expected = sorted.flatMap((n) =>
    n === 'a' ? [`a|${[f1, f2].sort(byteCmp)[0]}`, `a|${[f1, f2].sort(byteCmp)[1]}`] : [`${n}|${f1}`],
  )
  const whole = await summaries(A)
  t.same(whole.body.map(key), expected, 'ties: by session ID (bytewise), then flow')
  t.ok(
    whole.body.every((s) => s.last_timestamp === '2024-01-01T00:00:00.000000Z'),
    'the activity times really tie',
  )
  for (const limit of [1, 2, 3]) {
    const { seen } = await allSummaries(A, {}, limit)
    t.same(seen.map(key), expected, `pages of ${limit}`)
  }
})

t.test('GET sessions: counts and last text follow deletes, edits and moves', async (t) => {
  const flow_id = randomUUID()
  const [q1, a1, q2, a2] = await storeEach(A, [
    messageInput({ flow_id, session_id: 'main', text: 'q1' }),
    messageInput({ flow_id, session_id: 'main', sender: 'Machine', sender_name: 'AI', text: 'a1' }),
    messageInput({ flow_id, session_id: 'main', text: 'q2' }),
    messageInput({ flow_id, session_id: 'main', sender: 'Machine', sender_name: 'AI', text: 'a2' }),
  ])
  if (!q1 || !a1 || !q2 || !a2) throw new Error('store failed')
  const one = async (session_id: string) => (await summaries(A)).body.find((s) => s.session_id === session_id)

  t.match(await one('main'), { message_count: 4, last_text: 'a2', last_timestamp: a2.timestamp })

  const edited = await inject(A, 'PUT', `/api/v1/monitor/messages/${a2.id}`, {}, { text: 'a2, edited' })
  t.equal(edited.statusCode, 200)
  t.match(await one('main'), { message_count: 4, last_text: 'a2, edited', last_timestamp: a2.timestamp })

  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, [a2.id])).statusCode, 204)
  t.same(await one('main'), {
    session_id: 'main',
    flow_id,
    message_count: 3,
    first_timestamp: q1.timestamp,
    last_timestamp: q2.timestamp,
    last_text: 'q2',
    metadata: {},
    positive_feedback_count: 0,
    negative_feedback_count: 0,
    usage: NO_USAGE,
  })

  const moved = await inject(A, 'PUT', `/api/v1/monitor/messages/${q1.id}`, {}, { session_id: 'side' })
  t.equal(moved.statusCode, 200)
  t.match(await one('main'), { message_count: 2, first_timestamp: a1.timestamp, last_text: 'q2' })
  t.same(await one('side'), {
    session_id: 'side',
    flow_id,
    message_count: 1,
    first_timestamp: q1.timestamp,
    last_timestamp: q1.timestamp,
    last_text: 'q1',
    metadata: {},
    positive_feedback_count: 0,
    negative_feedback_count: 0,
    usage: NO_USAGE,
  })

  // Deletes by tenant B change nothing.
  t.equal((await inject(B, 'DELETE', '/api/v1/monitor/messages', {}, [a1.id, q2.id])).statusCode, 204)
  t.equal((await inject(B, 'DELETE', `/api/v1/monitor/messages/session/main`)).statusCode, 204)
  t.match(await one('main'), { message_count: 2 })

  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, [a1.id, q2.id])).statusCode, 204)
  t.equal(await one('main'), undefined, 'an emptied session leaves the list')
  t.same(
    (await summaries(A)).body.map((s) => s.session_id),
    ['side'],
  )
})

t.test('PATCH session rename: moves every message, atomically, and returns them in order', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const stored = await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 'old', text: 'q1' }),
    messageInput({ flow_id: f1, session_id: 'old', sender: 'Machine', sender_name: 'AI', text: 'a1' }),
    messageInput({ flow_id: f2, session_id: 'old', text: 'f2 q' }),
    messageInput({ flow_id: f1, session_id: 'old', text: 'q2' }),
    messageInput({ flow_id: f1, session_id: 'old', sender: 'Machine', sender_name: 'AI', text: 'a2', error: true }),
    messageInput({ flow_id: f1, session_id: 'untouched', text: 'stay' }),
  ])
  const theirs = await storeEach(B, [messageInput({ flow_id: f1, session_id: 'old', text: 'tenant b' })])
  const old = stored.filter((m) => m.session_id === 'old')
  // Fill the history cache under both names first.
  t.equal((await history(app, A, { flow_id: f1, session_id: 'old' })).length, 3, 'error messages are not history')
  t.same(await history(app, A, { flow_id: f1, session_id: 'new' }), [])

  const res = await inject(A, 'PATCH', `/api/v1/monitor/messages/session/old`, { new_session_id: 'new' })
  t.equal(res.statusCode, 200)
  const renamed = res.json() as Msg[]
  t.same(
    renamed,
    old.map((m) => ({ ...m, session_id: 'new' })),
    'every message of the session, in order, with the new ID and nothing else changed',
  )
  t.same(await messages(A, { session_id: 'old' }), [], 'nothing left under the old ID')
  t.same(ids(await messages(A, { session_id: 'new' })), ids(old))
  t.same(await history(app, A, { flow_id: f1, session_id: 'old' }), [], 'history under the old ID: empty')
  t.same(
    ids(await history(app, A, { flow_id: f1, session_id: 'new' })),
    ids(old.filter((m) => m.flow_id === f1 && !m.error)),
    'history under the new ID: the renamed messages',
  )
  t.same(ids(await history(app, A, { flow_id: f2, session_id: 'new' })), ids(old.filter((m) => m.flow_id === f2)))
  t.same([...(await sessionIds(A))].sort(), ['new', 'untouched'])
  t.same(
    (await summaries(A)).body,
    expectedSummaries(stored.map((m) => (m.session_id === 'old' ? { ...m, session_id: 'new' } : m))),
    'the summaries follow the rename',
  )
  t.same(await messages(B), theirs, 'tenant B’s session of the same name is untouched')
  t.same(ids(await history(app, B, { flow_id: f1, session_id: 'old' })), ids(theirs))

  // Renaming back works too (the old ID has no messages any more).
  const back = await inject(A, 'PATCH', `/api/v1/monitor/messages/session/new`, { new_session_id: 'old' })
  t.equal(back.statusCode, 200)
  t.same(ids(back.json()), ids(old))
  t.same(
    ids(await history(app, A, { flow_id: f1, session_id: 'old' })),
    ids(old.filter((m) => m.flow_id === f1 && !m.error)),
  )
  t.same(await history(app, A, { flow_id: f1, session_id: 'new' }), [])
})

t.test('PATCH session rename: flow_id restricts it to one flow', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const stored = await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 'shared', text: 'in f1' }),
    messageInput({ flow_id: f2, session_id: 'shared', text: 'in f2' }),
    messageInput({ flow_id: f1, session_id: 'shared', text: 'in f1 again' }),
  ])
  const res = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/shared', {
    new_session_id: 'f1 only',
    flow_id: f1,
  })
  t.equal(res.statusCode, 200)
  t.same(
    (res.json() as Msg[]).map((m) => m.text),
    ['in f1', 'in f1 again'],
  )
  t.same(
    (await messages(A, { session_id: 'shared' })).map((m) => m.text),
    ['in f2'],
    'the other flow keeps the old ID',
  )
  t.same(ids(await messages(A, { session_id: 'f1 only' })), ids(stored.filter((m) => m.flow_id === f1)))
  const none = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/shared', {
    new_session_id: 'x',
    flow_id: randomUUID(),
  })
  assertError(t, none, 404, 'MSGSTORE_SESSION_NOT_FOUND')
})

t.test('PATCH session rename: 409 instead of a merge, and then nothing moved', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const f3 = randomUUID()
  await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 'old', text: 'old f1' }),
    messageInput({ flow_id: f2, session_id: 'old', text: 'old f2' }),
    messageInput({ flow_id: f2, session_id: 'taken', text: 'taken f2' }),
    messageInput({ flow_id: f3, session_id: 'elsewhere', text: 'elsewhere f3' }),
  ])
  const before = await messages(A)
  const conflict = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/old', { new_session_id: 'taken' })
  assertError(t, conflict, 409, 'MSGSTORE_SESSION_CONFLICT')
  t.same(await messages(A), before, 'nothing moved, in no flow')
  t.same(
    (await history(app, A, { flow_id: f1, session_id: 'old' })).map((m) => m.text),
    ['old f1'],
  )

  assertError(t, await inject(A, 'PATCH', '/api/v1/monitor/messages/session/old', { new_session_id: 'old' }), 409)
  t.same(await messages(A), before)

  // In a flow where the target has no messages, the rename is fine.
  const inF1 = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/old', {
    new_session_id: 'taken',
    flow_id: f1,
  })
  t.equal(inF1.statusCode, 200)
  t.same(
    (inF1.json() as Msg[]).map((m) => m.text),
    ['old f1'],
  )
  // A target that has messages only in flows where the old session has none is no conflict.
  const other = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/old', { new_session_id: 'elsewhere' })
  t.equal(other.statusCode, 200)
  t.same(
    (other.json() as Msg[]).map((m) => m.text),
    ['old f2'],
  )
  // Another tenant's messages under the target name are no conflict either.
  await storeEach(B, [messageInput({ flow_id: f1, session_id: 'b-target', text: 'b' })])
  const cross = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/taken', {
    new_session_id: 'b-target',
    flow_id: f1,
  })
  t.equal(cross.statusCode, 200)
  t.same(
    (await messages(B)).map((m) => [m.session_id, m.text]),
    [['b-target', 'b']],
  )

  // A target whose messages were all deleted takes the rename.
  const [gone] = await storeEach(A, [messageInput({ flow_id: f1, session_id: 'emptied', text: 'bye' })])
  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, [gone?.id])).statusCode, 204)
  const intoEmpty = await inject(A, 'PATCH', '/api/v1/monitor/messages/session/b-target', {
    new_session_id: 'emptied',
  })
  t.equal(intoEmpty.statusCode, 200)
  t.same(
    (await messages(A, { session_id: 'emptied' })).map((m) => m.text),
    ['old f1'],
  )
})

t.test('PATCH session rename: 404 for no messages, 422 for a missing or invalid new ID, per tenant', async (t) => {
  const flow_id = randomUUID()
  const [m] = await storeEach(A, [messageInput({ flow_id, session_id: 'mine', text: 'a' })])
  const rename = (tenant: string, old: string, query: Query) =>
    inject(tenant, 'PATCH', `/api/v1/monitor/messages/session/${path(old)}`, query)

  assertError(t, await rename(A, 'never existed', { new_session_id: 'x' }), 404, 'MSGSTORE_SESSION_NOT_FOUND')
  assertError(t, await rename(B, 'mine', { new_session_id: 'stolen' }), 404, 'MSGSTORE_SESSION_NOT_FOUND')
  t.same(await messages(A), [m], 'a foreign rename moves nothing')
  t.same(await messages(B), [])

  for (const [name, query] of [
    ['missing', {}],
    ['empty', { new_session_id: '' }],
    ['NUL', { new_session_id: 'a\u0000b' }],
    ['256 code points', { new_session_id: 'x'.repeat(256) }],
    ['bad flow_id', { new_session_id: 'ok', flow_id: 'not-a-uuid' }],
  ] as Array<[string, Query]>) {
    const body = assertError(t, await rename(A, 'mine', query), 422, 'MSGSTORE_VALIDATION')
    t.match(body.detail, /new_session_id|flow_id/, `${name}: the detail names the field`)
  }
  t.same(await messages(A), [m], 'nothing renamed')

  const [dead] = await storeEach(A, [messageInput({ flow_id, session_id: 'deleted later' })])
  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, [dead?.id])).statusCode, 204)
  assertError(t, await rename(A, 'deleted later', { new_session_id: 'x' }), 404, 'MSGSTORE_SESSION_NOT_FOUND')
})

t.test('DELETE session/{id}: 204, per tenant, optionally per flow; a no-op for unknown sessions', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  const stored = await storeEach(A, [
    messageInput({ flow_id: f1, session_id: 'doomed', text: 'x1' }),
    messageInput({ flow_id: f2, session_id: 'doomed', text: 'x2' }),
    messageInput({ flow_id: f1, session_id: 'kept', text: 'k' }),
  ])
  const theirs = await storeEach(B, [messageInput({ flow_id: f1, session_id: 'doomed', text: 'b' })])
  t.equal((await history(app, A, { flow_id: f1, session_id: 'doomed' })).length, 1, 'cached before the delete')

  const foreign = await inject(B, 'DELETE', '/api/v1/monitor/messages/session/kept')
  t.equal(foreign.statusCode, 204, 'a foreign session: 204')
  t.equal((await messages(A)).length, 3, 'and nothing deleted')

  const unknown = await inject(A, 'DELETE', '/api/v1/monitor/messages/session/never')
  t.equal(unknown.statusCode, 204, 'an unknown session: 204')
  t.equal(unknown.body, '')

  const oneFlow = await inject(A, 'DELETE', '/api/v1/monitor/messages/session/doomed', { flow_id: f2 })
  t.equal(oneFlow.statusCode, 204)
  t.same(
    (await messages(A, { session_id: 'doomed' })).map((m) => m.text),
    ['x1'],
    'flow_id restricts the delete',
  )

  const res = await inject(A, 'DELETE', '/api/v1/monitor/messages/session/doomed')
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.same(ids(await messages(A)), ids(stored.filter((m) => m.session_id === 'kept')))
  t.same(await history(app, A, { flow_id: f1, session_id: 'doomed' }), [], 'the history is gone too')
  t.same(await messages(B), theirs, 'tenant B’s session of the same name is untouched')
  t.same([...(await sessionIds(A))], ['kept'])
  assertError(t, await inject(A, 'DELETE', '/api/v1/monitor/messages/session/x', { flow_id: 'nope' }), 422)
})

t.test(
  'DELETE sessions (bulk): at most 500, deleted_count counts the caller’s sessions that had messages',
  async (t) => {
    const f1 = randomUUID()
    const f2 = randomUUID()
    await storeEach(A, [
      messageInput({ flow_id: f1, session_id: 's1' }),
      messageInput({ flow_id: f2, session_id: 's1' }),
      messageInput({ flow_id: f1, session_id: 's2' }),
      messageInput({ flow_id: f1, session_id: 'keep' }),
      messageInput({ flow_id: f1, session_id: 'emptied' }),
    ])
    await storeEach(B, [
      messageInput({ flow_id: f1, session_id: 's1' }),
      messageInput({ flow_id: f1, session_id: 'b1' }),
    ])
    const emptied = await messages(A, { session_id: 'emptied' })
    t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, ids(emptied))).statusCode, 204)
    t.equal((await history(app, A, { flow_id: f2, session_id: 's1' })).length, 1, 'cached before the delete')

    const bulk = (tenant: string, body: unknown) =>
      inject(tenant, 'DELETE', '/api/v1/monitor/messages/sessions', {}, body)

    const tooMany = Array.from({ length: 501 }, (_, i) => (i === 0 ? 's1' : `n${i}`))
    const refused = assertError(t, await bulk(A, tooMany), 400, 'MSGSTORE_TOO_MANY_SESSIONS')
    t.match(refused.detail, /500/)
    t.equal((await messages(A, { session_id: 's1' })).length, 2, 'a refused bulk delete deletes nothing')

    const res = await bulk(A, ['s1', 's2', 's1', 'b1', 'emptied', 'unknown'])
    t.equal(res.statusCode, 200)
    t.same(res.json(), { message: 'Deleted 2 sessions', deleted_count: 2 })
    t.same(
      (await messages(A)).map((m) => m.session_id),
      ['keep'],
    )
    t.same(await history(app, A, { flow_id: f2, session_id: 's1' }), [])
    t.same(
      (await messages(B)).map((m) => m.session_id),
      ['s1', 'b1'],
      'tenant B keeps its sessions, including one with the same name',
    )

    const again = await bulk(A, ['s1', 's2'])
    t.same(again.json(), { message: 'Deleted 0 sessions', deleted_count: 0 }, 'already deleted: 0')
    const foreign = await bulk(B, ['keep'])
    t.equal(foreign.json().deleted_count, 0, 'another tenant’s session: 0')
    t.equal((await messages(A)).length, 1)

    const exactly500 = Array.from({ length: 500 }, (_, i) => (i === 499 ? 'keep' : `m${i}`))
    const max = await bulk(A, exactly500)
    t.equal(max.statusCode, 200, '500 sessions are allowed')
    t.same(max.json(), { message: 'Deleted 1 session', deleted_count: 1 })
    t.same(await messages(A), [])

    assertError(t, await bulk(A, []), 422, 'MSGSTORE_VALIDATION')
    assertError(t, await bulk(A, ['ok', 42]), 422, 'MSGSTORE_VALIDATION')
    const notArray = await app.inject({
      method: 'DELETE',
      url: '/api/v1/monitor/messages/sessions',
      headers: { ...internalHeaders(A), 'content-type': 'application/json' },
      payload: '"keep"',
    })
    assertError(t, notArray, 422, 'MSGSTORE_VALIDATION')
  },
)

t.test("GET sessions: usage sums the messages' properties.usage, and follows edits, deletes and moves", async (t) => {
  const flow_id = randomUUID()
  const usage = (input_tokens: unknown, output_tokens: unknown, total_tokens: unknown) => ({
    properties: { usage: { input_tokens, output_tokens, total_tokens } },
  })
  const [, a1, , a2] = await storeEach(A, [
    messageInput({ flow_id, session_id: 'tokens', text: 'q1' }),
    messageInput({ flow_id, session_id: 'tokens', sender: 'Machine', text: 'a1', ...usage(10, 3, 13) }),
    messageInput({ flow_id, session_id: 'tokens', text: 'q2' }),
    messageInput({ flow_id, session_id: 'tokens', sender: 'Machine', text: 'a2', ...usage(20, 5, 25) }),
    // not usage: ignored, never an error
    messageInput({ flow_id, session_id: 'tokens', text: 'junk', ...usage('7', -1, 1.5) }),
    messageInput({ flow_id, session_id: 'tokens', text: 'huge', ...usage(1e300, null, [1]) }),
    messageInput({ flow_id, session_id: 'tokens', text: 'odd', properties: { usage: 'lots' } }),
  ])
  if (!a1 || !a2) throw new Error('store failed')
  const one = async (session_id: string) =>
    (await summaries(A, { flow_id })).body.find((s) => s.session_id === session_id)?.usage

  t.same(await one('tokens'), { input_tokens: 30, output_tokens: 8, total_tokens: 38 })
  const edited = await inject(A, 'PUT', `/api/v1/monitor/messages/${a2.id}`, {}, { ...usage(1, 1, 2) })
  t.equal(edited.statusCode, 200, edited.body)
  t.same(await one('tokens'), { input_tokens: 11, output_tokens: 4, total_tokens: 15 }, 'an edit is summed again')
  t.equal((await inject(A, 'PUT', `/api/v1/monitor/messages/${a1.id}`, {}, { session_id: 'other' })).statusCode, 200)
  t.same(await one('tokens'), { input_tokens: 1, output_tokens: 1, total_tokens: 2 }, 'a move takes its usage away')
  t.same(await one('other'), { input_tokens: 10, output_tokens: 3, total_tokens: 13 }, 'to the other session')
  t.equal((await inject(A, 'DELETE', '/api/v1/monitor/messages', {}, [a2.id])).statusCode, 204)
  t.same(await one('tokens'), NO_USAGE, 'a delete too')
})
