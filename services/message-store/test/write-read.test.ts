import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

t.test('stores a message and reads it back in the history', async (t) => {
  const app = await buildTestApp(t)
  const flow_id = randomUUID()
  const input = messageInput({ flow_id, session_id: 's 1', text: 'first' })
  const res = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders(),
    payload: input,
  })
  t.equal(res.statusCode, 201)
  const stored = res.json()
  t.equal(stored.id, input.id)
  t.equal(stored.session_id, 's 1')
  t.match(stored.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  t.same(stored.files, [])
  t.equal(stored.category, 'message')

  const again = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders(),
    payload: input,
  })
  t.equal(again.statusCode, 200, 'a replayed id answers 200')
  t.same(again.json(), stored, 'and the same message')

  await store(app, 'tenant-a', [messageInput({ flow_id, session_id: 's 1', text: 'second' })])
  const h1 = await history(app, 'tenant-a', { flow_id, session_id: 's 1', limit: 10 })
  t.same(
    h1.map((m) => m.text),
    ['first', 'second'],
  )
  const h2 = await history(app, 'tenant-a', { flow_id, session_id: 's 1', limit: 10, order: 'DESC' })
  t.same(
    h2.map((m) => m.text),
    ['second', 'first'],
  )
  const other = await history(app, 'tenant-b', { flow_id, session_id: 's 1', limit: 10 })
  t.same(other, [], 'another tenant sees nothing')
})

t.test('then-history: stores the messages, then answers the history that holds them, in one call', async (t) => {
  const app = await buildTestApp(t)
  const flow_id = randomUUID()
  await store(app, 'tenant-a', [messageInput({ flow_id, session_id: 'turns', text: 'earlier' })])
  const inputs = [
    messageInput({ flow_id, session_id: 'turns', text: 'question' }),
    messageInput({ flow_id, session_id: 'turns', text: 'note', sender: 'Machine', sender_name: 'AI' }),
  ]
  const call = (tenant: string, payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/internal/messages/then-history', headers: internalHeaders(tenant), payload })
  const res = await call('tenant-a', { messages: inputs, history: { flow_id, session_id: 'turns', limit: 10 } })
  t.equal(res.statusCode, 201, res.body)
  const body = res.json()
  t.same(
    body.messages.map((m: { id: string }) => m.id),
    inputs.map((i) => i.id),
    'the stored messages, in input order',
  )
  t.same(
    body.history.map((m: { text: string }) => m.text),
    ['earlier', 'question', 'note'],
    'the history read after the write holds it (limit and order defaulted as in GET /internal/history)',
  )
  t.same(
    await history(app, 'tenant-a', { flow_id, session_id: 'turns', limit: 10 }),
    body.history,
    'the same history as a read of its own',
  )

  const replay = await call('tenant-a', {
    messages: inputs,
    history: { flow_id, session_id: 'turns', limit: 1, order: 'DESC' },
  })
  t.equal(replay.statusCode, 201)
  t.same(
    replay.json().history.map((m: { text: string }) => m.text),
    ['note'],
    'a replay stores nothing again (idempotent on id) and reads with its own query',
  )

  const other = await call('tenant-b', {
    messages: [messageInput({ flow_id, session_id: 'turns', text: 'b' })],
    history: { flow_id, session_id: 'turns' },
  })
  t.same(
    other.json().history.map((m: { text: string }) => m.text),
    ['b'],
    "another tenant's read sees only its own messages",
  )

  for (const [what, payload] of [
    ['no history query', { messages: inputs }],
    ['no messages', { messages: [], history: { flow_id, session_id: 'turns' } }],
    ['a bad history query', { messages: inputs, history: { flow_id: 'nope', session_id: 'turns' } }],
    ['an unknown field', { messages: inputs, history: { flow_id, session_id: 'turns' }, extra: 1 }],
  ] as const) {
    const bad = await call('tenant-a', payload)
    t.ok(bad.statusCode >= 400 && bad.statusCode < 500, `${what}: ${bad.statusCode}`)
  }
})
