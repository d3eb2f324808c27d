import { randomBytes, randomUUID } from 'node:crypto'
import type { Message, SessionSummary as Summary } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

const q = encodeURIComponent

function fork(tenant: string, sessionId: string, flowId: string, payload?: unknown) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/monitor/sessions/${q(sessionId)}/fork?flow_id=${q(flowId)}`,
    headers: internalHeaders(tenant),
    ...(payload === undefined ? {} : { payload: payload as never }),
  })
}

/** A session's messages in order, through the monitor list. */
async function messages(tenant: string, flowId: string, sessionId: string): Promise<Message[]> {
  const res = await app.inject({
    url: `/api/v1/monitor/messages?flow_id=${flowId}&session_id=${q(sessionId)}&limit=1000`,
    headers: internalHeaders(tenant),
  })
  if (res.statusCode !== 200) throw new Error(`list failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

async function sessions(tenant: string, flowId: string): Promise<Summary[]> {
  const res = await app.inject({
    url: `/api/v1/monitor/sessions?flow_id=${flowId}&limit=500`,
    headers: internalHeaders(tenant),
  })
  return res.json()
}

/** Everything of a message but what a fork changes (its id and session). */
const content = ({ id: _id, session_id: _session, ...rest }: Message) => rest

/** A conversation of six messages in one session (two batches: timestamps may tie within one), with metadata. */
async function conversation(tenant: string, flowId: string, sessionId = 'main') {
  const turn = (n: number) => [
    messageInput({ flow_id: flowId, session_id: sessionId, text: `q${n}`, properties: { source: { id: 'in' } } }),
    messageInput({
      flow_id: flowId,
      session_id: sessionId,
      sender: 'Machine',
      sender_name: 'AI',
      text: `a${n}`,
      files: [`f${n}.png`],
      properties: { positive_feedback: n === 1 ? true : null },
    }),
  ]
  await store(app, tenant, [...turn(1), ...turn(2)])
  await store(app, tenant, turn(3))
  const res = await app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/sessions/${q(sessionId)}?flow_id=${flowId}`,
    headers: internalHeaders(tenant),
    payload: { metadata: { user_id: 'u-1' } },
  })
  if (res.statusCode !== 200) throw new Error(`metadata failed: ${res.body}`)
  return messages(tenant, flowId, sessionId)
}

t.test(
  'a fork copies every message (new ids, same order and fields) and the metadata; the original is untouched',
  async (t) => {
    const flow = randomUUID()
    const original = await conversation(A, flow)
    const before = await sessions(A, flow)
    const res = await fork(A, 'main', flow, { new_session_id: 'branch' })
    t.equal(res.statusCode, 201, res.body)
    const summary = res.json() as Summary
    const main = before.find((s) => s.session_id === 'main') as Summary
    t.same(summary, { ...main, session_id: 'branch' }, 'the summary: the same counts, times, last text, metadata')
    t.equal(summary.positive_feedback_count, 1, 'feedback is copied with the messages')

    const copies = await messages(A, flow, 'branch')
    t.same(copies.map(content), original.map(content), 'same order, timestamps, texts, senders, files, properties')
    t.ok(
      copies.every((m) => m.session_id === 'branch' && !original.some((o) => o.id === m.id)),
      'new ids, in the new session',
    )
    t.same(await messages(A, flow, 'main'), original, 'the original session is unchanged')
    const after = await sessions(A, flow)
    t.same(
      after.find((s) => s.session_id === 'main'),
      main,
      "the original's summary is unchanged",
    )
    t.same(after.map((s) => s.session_id).sort(), ['branch', 'main'])

    // the copies are messages of their own: an edit of one leaves the original alone
    const edit = await app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${copies[0]?.id}`,
      headers: internalHeaders(A),
      payload: { text: 'changed' },
    })
    t.equal(edit.statusCode, 200)
    t.equal((await messages(A, flow, 'main'))[0]?.text, 'q1')
  },
)

t.test('up_to_message_id copies up to and including that message', async (t) => {
  const flow = randomUUID()
  const original = await conversation(A, flow)
  const point = original[2] as Message
  const res = await fork(A, 'main', flow, { new_session_id: 'to-q2', up_to_message_id: point.id })
  t.equal(res.statusCode, 201, res.body)
  t.match(res.json(), {
    session_id: 'to-q2',
    message_count: 3,
    last_text: 'q2',
    last_timestamp: point.timestamp,
    first_timestamp: original[0]?.timestamp,
    metadata: { user_id: 'u-1' },
    positive_feedback_count: 1,
  })
  t.same((await messages(A, flow, 'to-q2')).map(content), original.slice(0, 3).map(content))
  // the first message alone
  const first = await fork(A, 'main', flow, { new_session_id: 'to-q1', up_to_message_id: original[0]?.id })
  t.equal(first.statusCode, 201)
  t.same(
    (await messages(A, flow, 'to-q1')).map((m) => m.text),
    ['q1'],
  )
})

t.test('without a body (or new_session_id) the new session id is generated', async (t) => {
  const flow = randomUUID()
  const original = await conversation(A, flow)
  for (const payload of [undefined, {}]) {
    const res = await fork(A, 'main', flow, payload)
    t.equal(res.statusCode, 201, res.body)
    const id = (res.json() as Summary).session_id
    t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUID')
    t.same((await messages(A, flow, id)).map(content), original.map(content))
  }
})

t.test("Memory's history of the fork is the copied one, through the cache, and follows later writes", async (t) => {
  const flow = randomUUID()
  const original = await conversation(A, flow)
  const texts = (ms: Array<{ text: string }>) => ms.map((m) => m.text)
  // the new session is read (and its empty state cached, where a cache is) before it exists
  t.same(await history(app, A, { flow_id: flow, session_id: 'branch' }), [])
  // a session whose messages were deleted keeps its row: a fork into it is fine, and its old cache is not served
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'reused', text: 'old' })])
  t.same(texts(await history(app, A, { flow_id: flow, session_id: 'reused' })), ['old'])
  const del = await app.inject({
    method: 'DELETE',
    url: `/api/v1/monitor/messages/session/reused?flow_id=${flow}`,
    headers: internalHeaders(A),
  })
  t.equal(del.statusCode, 204)
  t.same(await history(app, A, { flow_id: flow, session_id: 'reused' }), [])

  const expected = texts(original)
  for (const target of ['branch', 'reused']) {
    t.equal((await fork(A, 'main', flow, { new_session_id: target })).statusCode, 201)
    const hitsBefore = app.repository.stats().hits
    t.same(texts(await history(app, A, { flow_id: flow, session_id: target })), expected, `${target}: the copy`)
    t.same(texts(await history(app, A, { flow_id: flow, session_id: target })), expected, `${target}: read again`)
    if (cacheKind === 'redis' || cacheKind === 'memory') {
      t.ok(app.repository.stats().hits > hitsBefore, `${target}: the second read is served by the ${cacheKind} cache`)
    }
    // a run's next turn in the fork appends to the copied history (the cache's append path)
    await store(app, A, [messageInput({ flow_id: flow, session_id: target, text: `next in ${target}` })])
    t.same(texts(await history(app, A, { flow_id: flow, session_id: target })), [...expected, `next in ${target}`])
    t.same(texts(await history(app, A, { flow_id: flow, session_id: target, limit: 2 })), ['a3', `next in ${target}`])
  }
  t.same(texts(await history(app, A, { flow_id: flow, session_id: 'main' })), expected, 'the original history')
})

t.test('404: a session with no messages, in another flow, or of another tenant (which creates nothing)', async (t) => {
  const flow = randomUUID()
  await conversation(A, flow)
  const cases: Array<[string, string, string]> = [
    ['unknown session', A, 'nope'],
    ['another tenant', B, 'main'],
  ]
  for (const [name, tenant, session] of cases) {
    const res = await fork(tenant, session, flow, { new_session_id: 'b' })
    t.equal(res.statusCode, 404, name)
    t.equal(res.json().code, 'MSGSTORE_SESSION_NOT_FOUND', name)
  }
  const otherFlow = await fork(A, 'main', randomUUID(), { new_session_id: 'b' })
  t.equal(otherFlow.statusCode, 404, 'another flow')
  t.same(await sessions(B, flow), [], 'tenant B has no session')
  t.same(
    (await sessions(A, flow)).map((s) => s.session_id),
    ['main'],
    'nothing created for A',
  )
  t.same(await history(app, B, { flow_id: flow, session_id: 'b' }), [])
})

t.test('409: the new session has messages already (or is the session itself); nothing changes', async (t) => {
  const flow = randomUUID()
  const original = await conversation(A, flow)
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'taken', text: 'mine' })])
  for (const target of ['taken', 'main']) {
    const res = await fork(A, 'main', flow, { new_session_id: target })
    t.equal(res.statusCode, 409, target)
    t.equal(res.json().code, 'MSGSTORE_SESSION_CONFLICT')
  }
  t.same(
    (await messages(A, flow, 'taken')).map((m) => m.text),
    ['mine'],
  )
  t.same(await messages(A, flow, 'main'), original)
  // another tenant's session of that name is no conflict: sessions are per tenant
  await store(app, B, [messageInput({ flow_id: flow, session_id: 'theirs', text: 'b' })])
  const res = await fork(A, 'main', flow, { new_session_id: 'theirs' })
  t.equal(res.statusCode, 201)
  t.same(
    (await messages(B, flow, 'theirs')).map((m) => m.text),
    ['b'],
    "B's session is untouched",
  )
})

t.test('422: up_to_message_id of another session, flow or tenant, or unknown; nothing is created', async (t) => {
  const flow = randomUUID()
  await conversation(A, flow)
  const [otherSession] = await store(app, A, [messageInput({ flow_id: flow, session_id: 'other' })])
  const [otherFlow] = await store(app, A, [messageInput({ flow_id: randomUUID(), session_id: 'main' })])
  const [foreign] = await store(app, B, [messageInput({ flow_id: flow, session_id: 'main' })])
  for (const [name, id] of [
    ['another session', otherSession?.id],
    ['another flow', otherFlow?.id],
    ['another tenant', foreign?.id],
    ['unknown', randomUUID()],
  ] as const) {
    const res = await fork(A, 'main', flow, { new_session_id: 'b', up_to_message_id: id })
    t.equal(res.statusCode, 422, name)
    t.equal(res.json().code, 'MSGSTORE_INVALID_FORK_POINT', name)
  }
  t.same(await messages(A, flow, 'b'), [], 'no fork')
})

t.test('422: invalid session ids (oversize, NUL, lone surrogate, empty), bodies and flow ids', async (t) => {
  const flow = randomUUID()
  await conversation(A, flow)
  const bad: Array<[string, string]> = [
    ['NUL', 'a\u0000b'],
    ['256 code points', 'x'.repeat(256)],
    ['256 emoji', '😀'.repeat(256)],
    ['lone surrogate', 'a\ud800'],
  ]
  for (const [name, id] of bad) {
    const asNew = await fork(A, 'main', flow, { new_session_id: id })
    t.equal(asNew.statusCode, 422, `new_session_id: ${name}`)
    t.equal(asNew.json().code, 'MSGSTORE_VALIDATION')
    // a lone surrogate can't be percent-encoded (UTF-8 has none): only in the body
    if (name === 'lone surrogate') continue
    const asPath = await fork(A, id, flow, { new_session_id: 'ok' })
    t.equal(asPath.statusCode, 422, `path: ${name}`)
  }
  const bodies: Array<[string, unknown]> = [
    ['empty new_session_id', { new_session_id: '' }],
    ['number new_session_id', { new_session_id: 1 }],
    ['up_to_message_id not a uuid', { up_to_message_id: 'm1' }],
    ['unknown field', { new_session_id: 'x', other: 1 }],
    ['not an object', ['x']],
  ]
  for (const [name, payload] of bodies) {
    const res = await fork(A, 'main', flow, payload)
    t.equal(res.statusCode, 422, `${name}: ${res.body}`)
  }
  t.equal((await fork(A, 'main', 'not-a-uuid', {})).statusCode, 422, 'flow_id not a uuid')
  const noFlow = await app.inject({
    method: 'POST',
    url: '/api/v1/monitor/sessions/main/fork',
    headers: internalHeaders(A),
    payload: {},
  })
  t.equal(noFlow.statusCode, 422, 'flow_id missing')
  // the longest id is fine
  const long = '😀'.repeat(255)
  const res = await fork(A, 'main', flow, { new_session_id: long })
  t.equal(res.statusCode, 201)
  t.equal(res.json().session_id, long)
  t.same((await sessions(A, flow)).map((s) => s.session_id).sort(), ['main', long].sort(), 'only the valid fork')
})

t.test('racing: forks to one new id (one wins, the others 409); writes to the original during a fork', async (t) => {
  const flow = randomUUID()
  await store(
    app,
    A,
    Array.from({ length: 10 }, (_, i) => messageInput({ flow_id: flow, session_id: 'main', text: `m${i}` })),
  )
  const writes = Array.from({ length: 20 }, (_, i) =>
    store(app, A, [messageInput({ flow_id: flow, session_id: 'main', text: `w${i}` })]),
  )
  const forks = Array.from({ length: 5 }, () => fork(A, 'main', flow, { new_session_id: 'race' }))
  const [answers] = await Promise.all([Promise.all(forks), Promise.all(writes)])
  t.same(answers.map((res) => res.statusCode).sort(), [201, 409, 409, 409, 409], 'one fork, four conflicts')
  const won = answers.find((res) => res.statusCode === 201)?.json() as Summary
  const copies = await messages(A, flow, 'race')
  const main = await messages(A, flow, 'main')
  t.equal(main.length, 30, 'every write reached the original')
  t.equal(won.message_count, copies.length, 'the summary counts what was copied')
  t.ok(copies.length >= 10, `the fork holds the ${copies.length} messages present when it ran`)
  // What it copied is what had committed when it ran: the 10 first messages, then some of the racing writes
  // (a write takes its timestamp before it waits for the session's lock, so not necessarily the earliest ones).
  const copied = new Set(copies.map((m) => m.text))
  t.equal(copied.size, copies.length, 'no message copied twice')
  t.ok(
    main.slice(0, 10).every((m) => copied.has(m.text)),
    'the messages stored before it',
  )
  t.same(
    copies.map(content),
    main.filter((m) => copied.has(m.text)).map(content),
    "in the original's order, with its timestamps",
  )
})
