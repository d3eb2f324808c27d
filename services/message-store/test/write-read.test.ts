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
