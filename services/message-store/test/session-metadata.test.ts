import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

interface Summary {
  session_id: string
  flow_id: string
  message_count: number
  last_text: string
  metadata: Record<string, string>
}

const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

const patch = (tenant: string, sessionId: string, flowId: string, payload: unknown) =>
  app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/sessions/${encodeURIComponent(sessionId)}`,
    headers: internalHeaders(tenant),
    query: { flow_id: flowId },
    payload: payload as never,
  })

/** GET /api/v1/monitor/sessions with a raw query string (repeated parameters, dotted names). */
async function list(tenant: string, query = '') {
  const res = await app.inject({
    method: 'GET',
    url: `/api/v1/monitor/sessions?limit=500${query}`,
    headers: internalHeaders(tenant),
  })
  return { status: res.statusCode, body: res.json() as Summary[] & { code?: string } }
}

const sorted = (summaries: Summary[]) => summaries.map((s) => s.session_id).sort()

t.test('PATCH merges metadata (null removes a key) and answers the summary; the list shows it', async (t) => {
  const flow = randomUUID()
  await store(app, A, [messageInput({ flow_id: flow, session_id: 's1', text: 'hi' })])
  let res = await patch(A, 's1', flow, { metadata: { user_id: 'u-1', plan: 'pro' } })
  t.equal(res.statusCode, 200, res.body)
  const summary = res.json() as Summary
  t.same(summary.metadata, { user_id: 'u-1', plan: 'pro' })
  t.equal(summary.message_count, 1)
  t.equal(summary.last_text, 'hi')
  t.equal(summary.session_id, 's1')
  res = await patch(A, 's1', flow, { metadata: { plan: null, 'a.b-c_9': 'x', missing: null } })
  t.same(res.json().metadata, { user_id: 'u-1', 'a.b-c_9': 'x' })
  const { body } = await list(A, `&flow_id=${flow}`)
  t.same(body[0]?.metadata, { user_id: 'u-1', 'a.b-c_9': 'x' })
  // a session without metadata lists `{}`
  await store(app, A, [messageInput({ flow_id: flow, session_id: 's2' })])
  t.same((await list(A, `&flow_id=${flow}`)).body.find((s) => s.session_id === 's2')?.metadata, {})
})

t.test('PATCH: 404 for a session with no messages, in another flow or of another tenant', async (t) => {
  const flow = randomUUID()
  await store(app, A, [messageInput({ flow_id: flow, session_id: 's1' })])
  for (const [tenant, session, f] of [
    [A, 'nope', flow],
    [A, 's1', randomUUID()],
    [B, 's1', flow],
  ] as const) {
    const res = await patch(tenant, session, f, { metadata: { k: 'v' } })
    t.equal(res.statusCode, 404, `${tenant} ${session}`)
    t.equal(res.json().code, 'MSGSTORE_SESSION_NOT_FOUND')
  }
  // B's attempt changed nothing of A's
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, {})
})

t.test('PATCH: bad metadata is a 422 and changes nothing', async (t) => {
  const flow = randomUUID()
  await store(app, A, [messageInput({ flow_id: flow, session_id: 's1' })])
  const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']))
  t.equal((await patch(A, 's1', flow, { metadata: sixteen })).statusCode, 200)
  const cases: Array<[string, unknown]> = [
    ['a 17th key after the merge', { metadata: { k16: 'v' } }],
    ['17 keys in one patch', { metadata: { ...sixteen, k16: 'v' } }],
    ['an empty key', { metadata: { '': 'v' } }],
    ['a key with a space', { metadata: { 'a b': 'v' } }],
    ['a key with a non-ASCII letter', { metadata: { clé: 'v' } }],
    ['a 65-character key', { metadata: { ['k'.repeat(65)]: 'v' } }],
    ['a 513-character value', { metadata: { k0: 'x'.repeat(513) } }],
    ['a number value', { metadata: { k0: 1 } }],
    ['an object value', { metadata: { k0: { a: 'b' } } }],
    ['metadata not an object', { metadata: ['a'] }],
    ['a NUL in a value', { metadata: { k0: 'a\u0000b' } }],
    ['a lone surrogate in a value', { metadata: { k0: 'a\ud800b' } }],
    ['no metadata', {}],
    ['an unknown field', { metadata: {}, other: 1 }],
  ]
  for (const [name, payload] of cases) {
    const res = await patch(A, 's1', flow, payload)
    t.equal(res.statusCode, 422, `${name}: ${res.body}`)
  }
  t.equal((await patch(A, 's1', 'not-a-uuid', { metadata: {} })).statusCode, 422, 'flow_id not a uuid')
  const missingFlow = await app.inject({
    method: 'PATCH',
    url: '/api/v1/monitor/sessions/s1',
    headers: internalHeaders(A),
    payload: { metadata: {} },
  })
  t.equal(missingFlow.statusCode, 422, 'flow_id missing')
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, sixteen, 'unchanged')
  // the longest key and value are fine; replacing a key keeps 16
  const edge = await patch(A, 's1', flow, { metadata: { k0: 'x'.repeat(512), k1: null, ['k'.repeat(64)]: 'v' } })
  t.equal(edge.statusCode, 200, edge.body)
  t.equal(Object.keys(edge.json().metadata).length, 16)
})

t.test('the list filters by metadata (every filter must match), per tenant', async (t) => {
  const flow1 = randomUUID()
  const flow2 = randomUUID()
  for (const [tenant, flow, session] of [
    [A, flow1, 's1'],
    [A, flow1, 's2'],
    [A, flow2, 's3'],
    [A, flow2, 's4'],
    [B, flow1, 's1'],
  ] as const) {
    await store(app, tenant, [messageInput({ flow_id: flow, session_id: session })])
  }
  await patch(A, 's1', flow1, { metadata: { user_id: 'u-1', plan: 'pro' } })
  await patch(A, 's2', flow1, { metadata: { user_id: 'u-2', plan: 'pro' } })
  await patch(A, 's3', flow2, { metadata: { user_id: 'u-1' } })
  await patch(B, 's1', flow1, { metadata: { user_id: 'u-1', plan: 'pro' } })
  t.same(sorted((await list(A, '&metadata.user_id=u-1')).body), ['s1', 's3'])
  t.same(sorted((await list(A, '&metadata.user_id=u-1&metadata.plan=pro')).body), ['s1'])
  t.same(sorted((await list(A, '&metadata.plan=pro')).body), ['s1', 's2'])
  t.same(sorted((await list(A, `&metadata.user_id=u-1&flow_id=${flow2}`)).body), ['s3'])
  t.same(sorted((await list(A, '&metadata.user_id=u-3')).body), [])
  t.same(sorted((await list(A, '&metadata.user_id=U-1')).body), [], 'values compare exactly')
  t.same(sorted((await list(A, '')).body), ['s1', 's2', 's3', 's4'])
  // B sees only its own
  const other = (await list(B, '&metadata.user_id=u-1')).body
  t.same(
    other.map((s) => [s.session_id, s.flow_id]),
    [['s1', flow1]],
  )
  // a value with characters that matter in JSON or SQL is matched as a plain string
  await patch(A, 's4', flow2, { metadata: { q: `a"b\\c'd` } })
  t.same(sorted((await list(A, `&metadata.q=${encodeURIComponent(`a"b\\c'd`)}`)).body), ['s4'])
})

t.test('the list refuses malformed metadata filters with a 400', async (t) => {
  for (const query of [
    '&metadata.a%20b=x',
    '&metadata.=x',
    `&metadata.${'k'.repeat(65)}=x`,
    '&metadata=x',
    '&metadata.user_id=a&metadata.user_id=b',
    `&metadata.k=${'x'.repeat(513)}`,
    '&metadata.k=a%00b',
    `&${Array.from({ length: 17 }, (_, i) => `metadata.k${i}=v`).join('&')}`,
  ]) {
    const { status, body } = await list(A, query)
    t.equal(status, 400, query.slice(0, 60))
    t.equal(body.code, 'MSGSTORE_INVALID_METADATA_FILTER')
  }
})

t.test('a rename keeps the metadata; a delete forgets it', async (t) => {
  const flow = randomUUID()
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'old' })])
  await patch(A, 'old', flow, { metadata: { user_id: 'u-1' } })
  const res = await app.inject({
    method: 'PATCH',
    url: '/api/v1/monitor/messages/session/old',
    headers: internalHeaders(A),
    query: { new_session_id: 'new', flow_id: flow },
  })
  t.equal(res.statusCode, 200, res.body)
  t.same(
    (await list(A, '&metadata.user_id=u-1')).body.map((s) => [s.session_id, s.metadata]),
    [['new', { user_id: 'u-1' }]],
  )
  // the old ID, used again, starts without metadata
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'old' })])
  t.same((await list(A, `&flow_id=${flow}`)).body.find((s) => s.session_id === 'old')?.metadata, {})
  const del = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages/session/new',
    headers: internalHeaders(A),
    query: { flow_id: flow },
  })
  t.equal(del.statusCode, 204)
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'new' })])
  t.same((await list(A, '&metadata.user_id=u-1')).body, [], 'a session started again under a deleted ID has none')
})

t.test('a write carrying session_metadata merges it with its messages, in the same statement', async (t) => {
  const flow = randomUUID()
  const first = messageInput({ flow_id: flow, session_id: 'run', session_metadata: { user_id: 'u-1', tmp: 'x' } })
  const second = messageInput({ flow_id: flow, session_id: 'run', session_metadata: { tmp: null, plan: 'pro' } })
  await store(app, A, [first, second])
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, { user_id: 'u-1', plan: 'pro' })
  // a later write without it keeps it; one with it merges
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'run' })])
  await store(app, A, [messageInput({ flow_id: flow, session_id: 'run', session_metadata: { plan: 'free' } })])
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, { user_id: 'u-1', plan: 'free' })
  // the message itself does not carry it
  const h = await history(app, A, { flow_id: flow, session_id: 'run' })
  t.equal(h.length, 4)
  t.notOk('session_metadata' in (h[0] as object))
  // a replayed id (nothing inserted) changes nothing
  const replay = { ...first, session_metadata: { replay: 'yes' } }
  await store(app, A, [replay])
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, { user_id: 'u-1', plan: 'free' })
  // another tenant's write to the same flow and session ID stays its own
  await store(app, B, [messageInput({ flow_id: flow, session_id: 'run', session_metadata: { user_id: 'b' } })])
  t.same((await list(A, `&flow_id=${flow}`)).body[0]?.metadata, { user_id: 'u-1', plan: 'free' })
  t.same((await list(B, `&flow_id=${flow}`)).body[0]?.metadata, { user_id: 'b' })
})

t.test(
  'a write whose session_metadata would pass 16 keys stores its messages and keeps the old metadata',
  async (t) => {
    const flow = randomUUID()
    const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']))
    await store(app, A, [messageInput({ flow_id: flow, session_id: 's', session_metadata: sixteen })])
    await store(app, A, [messageInput({ flow_id: flow, session_id: 's', session_metadata: { extra: 'v' } })])
    const [summary] = (await list(A, `&flow_id=${flow}`)).body
    t.equal(summary?.message_count, 2)
    t.same(summary?.metadata, sixteen)
  },
)

t.test('a write with bad session_metadata is refused (422)', async (t) => {
  const flow = randomUUID()
  for (const session_metadata of [{ 'a b': 'x' }, { k: 'x'.repeat(513) }, { k: 1 }, 'x']) {
    const res = await app.inject({
      method: 'POST',
      url: '/internal/messages/batch',
      headers: internalHeaders(A),
      payload: { messages: [messageInput({ flow_id: flow, session_id: 's', session_metadata })] },
    })
    t.equal(res.statusCode, 422, JSON.stringify(session_metadata).slice(0, 40))
  }
})
