// Found by the fuzz test (tests/fuzz/public-routes.test.ts): lone UTF-16 surrogates ("\udc00") in a request
// answered 500. Two in a row in a session ID made PGlite miscount the parameter's bytes ("malformed array
// literal"; packages/db now sends them as U+FFFD, as node-postgres does; session IDs refuse them now), and one
// in a message's properties made Postgres refuse the jsonb (22P02; now a 422, like a NUL).
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)
const app = await buildTestApp(t)
const headers = { ...internalHeaders('tenant-a'), 'content-type': 'application/json' }

t.test('a session ID with a lone surrogate is a 422 (a pair is a code point like any other)', async (t) => {
  const flow_id = randomUUID()
  await store(app, 'tenant-a', [messageInput({ flow_id, session_id: 'kept 😀' })])
  for (const payload of ['["\\udc00\\udc00"]', '["\\ud800\\ud800", "kept"]', '["a\\udfffb"]']) {
    const res = await app.inject({ method: 'DELETE', url: '/api/v1/monitor/messages/sessions', headers, payload })
    t.equal(res.statusCode, 422, payload)
    t.equal(res.json().code, 'MSGSTORE_VALIDATION')
  }
  const paired = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages/sessions',
    headers,
    payload: '["kept \\ud83d\\ude00"]',
  })
  t.equal(paired.statusCode, 200)
  t.equal(paired.json().deleted_count, 1)
})

t.test('lone surrogates in a text are stored as U+FFFD on both backends (PGlite failed on two in a row)', async (t) => {
  const [message] = await store(app, 'tenant-a', [messageInput({ flow_id: randomUUID(), session_id: 's' })])
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${message?.id}`,
    headers,
    payload: '{"text":"a\\udc00\\udc00b","sender_name":"\\ud800\\ud800"}',
  })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().text, 'a\ufffd\ufffdb')
  t.equal(res.json().sender_name, '\ufffd\ufffd')
})

t.test("a lone surrogate in a message's properties is a 422", async (t) => {
  const [message] = await store(app, 'tenant-a', [messageInput({ flow_id: randomUUID(), session_id: 's' })])
  const res = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${message?.id}`,
    headers,
    payload: '{"properties":{"note":"\\ud800"}}',
  })
  t.equal(res.statusCode, 422)
  t.same(res.json(), {
    detail: 'body contains a character that cannot be stored (a lone UTF-16 surrogate)',
    code: 'MSGSTORE_VALIDATION',
  })
})
