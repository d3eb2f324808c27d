// Found by the fuzz test (tests/fuzz/public-routes.test.ts): a lone UTF-16 surrogate ("\ud800") in a flow's JSON
// made Postgres refuse the jsonb (22P02, "Unicode low surrogate must follow a high surrogate"): a 500. It is the
// caller's data that cannot be stored, like a NUL: now a 422 in the envelope (service-kit's error mapping).
// And a run whose session_id was a lone surrogate passed validation, then the message-store refused its
// messages: a 502. A session ID refuses lone surrogates now (packages/schemas SessionId). And a run whose
// input_value had one: the message-store refused the message's jsonb, a 502; the message-store client now sends
// lone surrogates as U+FFFD (packages/clients), as Postgres stores them in text.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildTestApp, internalHeaders, startMessageStore } from './helpers/app.js'

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const { id: _id, ...flow } = JSON.parse(readFileSync(`${fixtures}/langflow-simple-api-test.json`, 'utf8'))
const store = await startMessageStore(t)
const app = await buildTestApp(t, { messageStoreUrl: store.url })
const headers = { ...internalHeaders(), 'content-type': 'application/json' }

t.test('a flow with a lone surrogate is refused with a 422, on import and on update', async (t) => {
  const broken = structuredClone(flow)
  broken.data.nodes[0].type = '\ud800'
  const created = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: JSON.stringify(broken) })
  t.equal(created.statusCode, 422)
  t.same(created.json(), {
    detail: 'body contains a character that cannot be stored (a lone UTF-16 surrogate)',
    code: 'RUNSVC_VALIDATION',
  })

  const ok = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: JSON.stringify(flow) })
  t.equal(ok.statusCode, 201)
  const patched = await app.inject({
    method: 'PATCH',
    url: `/api/v1/flows/${ok.json().id}`,
    headers,
    payload: JSON.stringify({ description: 'low \udc00 alone', data: broken.data }),
  })
  t.equal(patched.statusCode, 422)
  t.equal(patched.json().code, 'RUNSVC_VALIDATION')
})

t.test('a run whose session_id has a lone surrogate is a 422, before anything runs', async (t) => {
  const created = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: JSON.stringify(flow) })
  for (const session of ['"\\ud800"', '"a\\udc00"', '"\\udfff\\ud800"']) {
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/run/${created.json().id}`,
      headers,
      payload: `{"input_value":"hi","session_id":${session}}`,
    })
    t.equal(res.statusCode, 422, session)
    t.equal(res.json().code, 'RUNSVC_VALIDATION')
  }
})

t.test('a run whose input_value has lone surrogates runs; its messages hold U+FFFD instead', async (t) => {
  const created = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: JSON.stringify(flow) })
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${created.json().id}`,
    headers,
    payload: '{"input_value":"a\\ud800b\\udc00\\udc00","session_id":"lone"}',
  })
  t.equal(res.statusCode, 200, res.body)
  const history = await store.inject({
    url: `/api/v1/monitor/messages?flow_id=${created.json().id}&session_id=lone`,
    headers: internalHeaders(),
  })
  t.same(
    (history.json() as { text: string }[]).map((m) => m.text),
    ['a\ufffdb\ufffd\ufffd', 'a\ufffdb\ufffd\ufffd'],
  )
})
