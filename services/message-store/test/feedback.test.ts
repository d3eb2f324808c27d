import { randomBytes, randomUUID } from 'node:crypto'
import { type Message, NEXT_CURSOR_HEADER, type SessionSummary } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

type Counts = Pick<SessionSummary, 'positive_feedback_count' | 'negative_feedback_count'>
type Summary = SessionSummary

const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

const q = encodeURIComponent

const put = (tenant: string, id: string, payload: unknown) =>
  app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${id}`,
    headers: internalHeaders(tenant),
    payload: payload as never,
  })

const feedback = (tenant: string, positive: boolean | null, id: string, rest: Record<string, unknown> = {}) =>
  put(tenant, id, { properties: { ...rest, positive_feedback: positive } })

/** The feedback counts of one session (undefined: it has no messages). */
async function counts(tenant: string, flowId: string, sessionId: string): Promise<Counts | undefined> {
  const res = await app.inject({
    url: `/api/v1/monitor/sessions?flow_id=${flowId}&limit=500`,
    headers: internalHeaders(tenant),
  })
  const summary = (res.json() as Summary[]).find((s) => s.session_id === sessionId)
  return (
    summary && {
      positive_feedback_count: summary.positive_feedback_count,
      negative_feedback_count: summary.negative_feedback_count,
    }
  )
}
const n = (positive: number, negative: number): Counts => ({
  positive_feedback_count: positive,
  negative_feedback_count: negative,
})

async function listFeedback(tenant: string, query: string) {
  const res = await app.inject({ url: `/api/v1/monitor/feedback?${query}`, headers: internalHeaders(tenant) })
  return { res, body: res.json() as Message[], next: res.headers[NEXT_CURSOR_HEADER] as string | undefined }
}

/** Four replies (and their questions) in one session. */
async function replies(tenant: string, flowId: string, sessionId = 'main', count = 4) {
  const stored = await store(
    app,
    tenant,
    Array.from({ length: count }, (_, i) => [
      messageInput({ flow_id: flowId, session_id: sessionId, text: `q${i}` }),
      messageInput({
        flow_id: flowId,
        session_id: sessionId,
        sender: 'Machine',
        sender_name: 'AI',
        text: `a${i}`,
        properties: { source: { id: 'llm' }, positive_feedback: null, state: 'complete' },
      }),
    ]).flat(),
  )
  return stored.filter((m) => m.text.startsWith('a')) as unknown as Message[]
}

t.test(
  'PUT properties.positive_feedback true, false, null: stored as Langflow does, counted per session',
  async (t) => {
    const flow = randomUUID()
    const [a0, a1] = await replies(A, flow)
    if (!a0 || !a1) throw new Error('no replies')
    t.same(await counts(A, flow, 'main'), n(0, 0), 'no feedback yet')

    let res = await feedback(A, true, a0.id, a0.properties)
    t.equal(res.statusCode, 200, res.body)
    t.same(
      res.json().properties,
      { source: { id: 'llm' }, positive_feedback: true, state: 'complete' },
      'stored in properties',
    )
    t.equal(res.json().edit, false, 'feedback is no edit')
    t.same(await counts(A, flow, 'main'), n(1, 0))

    res = await feedback(A, false, a1.id, a1.properties)
    t.equal(res.statusCode, 200)
    t.same(await counts(A, flow, 'main'), n(1, 1))

    res = await feedback(A, false, a0.id, a0.properties)
    t.same(await counts(A, flow, 'main'), n(0, 2), 'changed from up to down')

    res = await feedback(A, null, a1.id, a1.properties)
    t.equal(res.json().properties.positive_feedback, null)
    t.same(await counts(A, flow, 'main'), n(0, 1), 'null takes it back')

    // properties without positive_feedback: no feedback
    res = await put(A, a0.id, { properties: { source: { id: 'llm' } } })
    t.equal(res.statusCode, 200)
    t.same(await counts(A, flow, 'main'), n(0, 0))

    // the history Memory reads shows it too (the cache follows the edit)
    await feedback(A, true, a1.id)
    const h = (await history(app, A, { flow_id: flow, session_id: 'main' })) as unknown as Message[]
    t.equal(h.find((m) => m.id === a1.id)?.properties.positive_feedback, true)
  },
)

t.test('422: positive_feedback of another type; nothing changes', async (t) => {
  const flow = randomUUID()
  const [a0] = await replies(A, flow)
  if (!a0) throw new Error('no replies')
  await feedback(A, true, a0.id)
  for (const value of ['true', 'yes', 1, 0, {}, [], [true]]) {
    const res = await put(A, a0.id, { properties: { positive_feedback: value } })
    t.equal(res.statusCode, 422, `${JSON.stringify(value)}: ${res.body}`)
    t.equal(res.json().code, 'MSGSTORE_VALIDATION')
    t.match(res.json().detail, /positive_feedback/)
  }
  const text = await put(A, a0.id, { text: 'edited too', properties: { positive_feedback: 'no' } })
  t.equal(text.statusCode, 422, 'with other fields too')
  t.same(await counts(A, flow, 'main'), n(1, 0), 'unchanged')
  const { body } = await listFeedback(A, `flow_id=${flow}`)
  t.same(
    body.map((m) => [m.text, m.properties.positive_feedback]),
    [['a0', true]],
  )
})

t.test('feedback of another tenant: 404, counts unchanged', async (t) => {
  const flow = randomUUID()
  const [a0] = await replies(A, flow)
  if (!a0) throw new Error('no replies')
  const res = await feedback(B, true, a0.id)
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'MSGSTORE_MESSAGE_NOT_FOUND')
  t.same(await counts(A, flow, 'main'), n(0, 0))
})

t.test('GET /feedback: messages with feedback, newest first, keyset-paged, by flow and session', async (t) => {
  const flow = randomUUID()
  const main = await replies(A, flow, 'main', 4)
  const side = await replies(A, flow, 'side', 2)
  // another flow and another tenant, with feedback too
  const [elsewhere] = await replies(A, randomUUID(), 'main', 1)
  const [foreign] = await replies(B, flow, 'main', 1)
  const given: Array<[Message | undefined, boolean]> = [
    [main[0], true],
    [main[2], false],
    [main[3], true],
    [side[1], false],
    [elsewhere, true],
  ]
  for (const [m, positive] of given) t.equal((await feedback(A, positive, m?.id as string)).statusCode, 200)
  t.equal((await feedback(B, true, foreign?.id as string)).statusCode, 200)

  // newest first (by timestamp): side's a1 was stored last
  const expected = [side[1], main[3], main[2], main[0]].map((m) => m?.id)
  let { res, body, next } = await listFeedback(A, `flow_id=${flow}`)
  t.equal(res.statusCode, 200)
  t.same(
    body.map((m) => m.id),
    expected,
  )
  t.equal(next, undefined, 'one page: no cursor')
  t.same(
    body.map((m) => m.properties.positive_feedback),
    [false, true, false, true],
  )
  t.match(body[0], { session_id: 'side', sender: 'Machine', text: 'a1', flow_id: flow }, 'the monitor message shape')

  // keyset pages of 1
  const paged: string[] = []
  let cursor: string | undefined
  do {
    ;({ res, body, next } = await listFeedback(A, `flow_id=${flow}&limit=1${cursor ? `&cursor=${q(cursor)}` : ''}`))
    t.equal(res.statusCode, 200)
    paged.push(...body.map((m) => m.id))
    cursor = next
  } while (cursor)
  t.same(paged, expected, 'the pages together, once each')

  // one session
  ;({ body } = await listFeedback(A, `flow_id=${flow}&session_id=main`))
  t.same(
    body.map((m) => m.id),
    [main[3], main[2], main[0]].map((m) => m?.id),
  )
  // taking feedback back removes it from the list
  await feedback(A, null, main[3]?.id as string)
  ;({ body } = await listFeedback(A, `flow_id=${flow}&session_id=main`))
  t.same(
    body.map((m) => m.id),
    [main[2], main[0]].map((m) => m?.id),
  )
  // tenant B sees only its own
  ;({ body } = await listFeedback(B, `flow_id=${flow}`))
  t.same(
    body.map((m) => m.id),
    [foreign?.id],
  )
  ;({ body } = await listFeedback(B, `flow_id=${flow}&session_id=side`))
  t.same(body, [])
})

t.test('GET /feedback: bad input', async (t) => {
  const flow = randomUUID()
  const cases: Array<[string, string, number]> = [
    ['no flow_id', '', 422],
    ['flow_id not a uuid', 'flow_id=x', 422],
    ['limit 0', `flow_id=${flow}&limit=0`, 422],
    ['limit 1001', `flow_id=${flow}&limit=1001`, 422],
    ['session_id of 256 code points', `flow_id=${flow}&session_id=${'x'.repeat(256)}`, 422],
    ['session_id with NUL', `flow_id=${flow}&session_id=a%00b`, 422],
    ['malformed cursor', `flow_id=${flow}&cursor=abc`, 400],
    // a cursor of another ordering (the message list's ascending one)
    [
      'cursor of another order',
      `flow_id=${flow}&cursor=${Buffer.from(JSON.stringify({ o: 'timestamp', d: 'ASC', v: null, t: '2026-01-01T00:00:00.000000Z', s: '1' })).toString('base64url')}`,
      400,
    ],
  ]
  for (const [name, query, status] of cases) {
    const { res } = await listFeedback(A, query)
    t.equal(res.statusCode, status, `${name}: ${res.body}`)
    t.ok(res.json().code, 'the error envelope')
  }
  // the bounds themselves are fine
  for (const limit of [1, 1000]) {
    t.equal((await listFeedback(A, `flow_id=${flow}&limit=${limit}`)).res.statusCode, 200, `limit ${limit}`)
  }
})

t.test('every mutation keeps the counts: writes, moves, deletes, renames, erase, forks', async (t) => {
  const flow = randomUUID()
  // a write may carry feedback already (an import)
  const [up, down, none] = await store(app, A, [
    messageInput({ flow_id: flow, session_id: 's1', text: 'u', properties: { positive_feedback: true } }),
    messageInput({ flow_id: flow, session_id: 's1', text: 'd', properties: { positive_feedback: false } }),
    messageInput({ flow_id: flow, session_id: 's1', text: 'n', properties: { positive_feedback: 'maybe' } }),
  ])
  t.same(await counts(A, flow, 's1'), n(1, 1), 'a non-boolean stored value is no feedback')
  await store(app, A, [
    messageInput({ flow_id: flow, session_id: 's1', text: 'u2', properties: { positive_feedback: true } }),
  ])
  t.same(await counts(A, flow, 's1'), n(2, 1), 'a later write adds')

  // an edit moving a message to another session moves its feedback
  t.equal((await put(A, up?.id as string, { session_id: 's2' })).statusCode, 200)
  t.same(await counts(A, flow, 's1'), n(1, 1))
  t.same(await counts(A, flow, 's2'), n(1, 0))
  // an edit of the text keeps it
  t.equal((await put(A, down?.id as string, { text: 'edited' })).statusCode, 200)
  t.same(await counts(A, flow, 's1'), n(1, 1))

  // a fork copies it; the original keeps it
  const forked = await app.inject({
    method: 'POST',
    url: `/api/v1/monitor/sessions/s1/fork?flow_id=${flow}`,
    headers: internalHeaders(A),
    payload: { new_session_id: 's3' },
  })
  t.match(forked.json(), n(1, 1))

  // deleting a message takes its feedback away
  const del = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(A),
    payload: [down?.id, none?.id],
  })
  t.equal(del.statusCode, 204)
  t.same(await counts(A, flow, 's1'), n(1, 0))
  t.same(await counts(A, flow, 's3'), n(1, 1), "the fork's copies are its own")

  // a rename moves the counts
  const renamed = await app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/messages/session/s3?new_session_id=s4&flow_id=${flow}`,
    headers: internalHeaders(A),
  })
  t.equal(renamed.statusCode, 200)
  t.equal(await counts(A, flow, 's3'), undefined)
  t.same(await counts(A, flow, 's4'), n(1, 1))

  // deleting a session (and writing to it again) starts from zero
  await app.inject({
    method: 'DELETE',
    url: `/api/v1/monitor/messages/session/s4?flow_id=${flow}`,
    headers: internalHeaders(A),
  })
  await store(app, A, [messageInput({ flow_id: flow, session_id: 's4', text: 'again' })])
  t.same(await counts(A, flow, 's4'), n(0, 0))

  // the metadata summary and the export carry the counts too
  const patched = await app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/sessions/s2?flow_id=${flow}`,
    headers: internalHeaders(A),
    payload: { metadata: { user_id: 'u' } },
  })
  t.match(patched.json(), { ...n(1, 0), metadata: { user_id: 'u' } })
  const exported = await app.inject({
    url: `/api/v1/monitor/sessions/s2/export?flow_id=${flow}`,
    headers: internalHeaders(A),
  })
  t.match(JSON.parse(exported.body.split('\n')[0] as string), { session: n(1, 0) })

  // an erase (by metadata) deletes the session with its counts
  const erased = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/sessions?metadata.user_id=u',
    headers: internalHeaders(A),
  })
  t.match(erased.json(), { deleted_sessions: 1 })
  t.equal(await counts(A, flow, 's2'), undefined)
  const { body } = await listFeedback(A, `flow_id=${flow}`)
  t.same(
    body.map((m) => m.text),
    ['u2'],
    'the list holds what is left',
  )
})
