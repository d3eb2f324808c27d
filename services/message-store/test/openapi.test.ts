import { INTERNAL_TOKEN_HEADER, OPENAPI_DOCUMENT_PATH } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, INTERNAL_TOKEN } from './helpers/app.js'

type Doc = {
  openapi: string
  paths: Record<string, Record<string, { tags?: string[]; summary?: string; responses: Record<string, unknown> }>>
}

t.test('the OpenAPI document: internal (token, no tenant needed), public paths only', async (t) => {
  const app = await buildTestApp(t)

  const none = await app.inject({ url: OPENAPI_DOCUMENT_PATH })
  t.equal(none.statusCode, 401)
  t.same(none.json(), { detail: 'Missing or invalid internal token', code: 'MSGSTORE_UNAUTHORIZED' })
  const wrong = await app.inject({
    url: OPENAPI_DOCUMENT_PATH,
    headers: { [INTERNAL_TOKEN_HEADER]: 'wrong-token-0123456789' },
  })
  t.equal(wrong.statusCode, 401)

  const res = await app.inject({ url: OPENAPI_DOCUMENT_PATH, headers: { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN } })
  t.equal(res.statusCode, 200, 'the token alone is enough: the document is not per tenant')
  const doc = res.json() as Doc
  t.match(doc.openapi, /^3\.1\./)
  t.same(Object.keys(doc.paths).sort(), [
    '/api/v1/monitor/feedback',
    '/api/v1/monitor/messages',
    '/api/v1/monitor/messages/search',
    '/api/v1/monitor/messages/session/{old_session_id}',
    '/api/v1/monitor/messages/session/{session_id}',
    '/api/v1/monitor/messages/sessions',
    '/api/v1/monitor/messages/{id}',
    '/api/v1/monitor/retention',
    '/api/v1/monitor/retention/sweep',
    '/api/v1/monitor/sessions',
    '/api/v1/monitor/sessions/export',
    '/api/v1/monitor/sessions/{session_id}',
    '/api/v1/monitor/sessions/{session_id}/export',
    '/api/v1/monitor/sessions/{session_id}/fork',
  ])
  const ops = Object.values(doc.paths).flatMap((item) => Object.values(item))
  t.equal(ops.length, 18)
  t.ok(
    ops.every((op) => op.summary && op.tags?.length === 1 && op.tags[0] === 'Monitor' && op.responses),
    'every operation has a summary and the Monitor tag',
  )
  t.match(doc.paths['/api/v1/monitor/messages']?.get?.responses['200'], {
    headers: { 'x-next-cursor': { schema: { type: 'string' } } },
  })
  t.match(doc.paths['/api/v1/monitor/feedback']?.get?.responses['200'], {
    headers: { 'x-next-cursor': { schema: { type: 'string' } } },
  })
  const fork = doc.paths['/api/v1/monitor/sessions/{session_id}/fork']?.post
  t.ok(
    fork?.responses['201'] && fork.responses['404'] && fork.responses['409'] && fork.responses['422'],
    'fork: 201/404/409/422',
  )
  t.notMatch(res.body, /\/internal|\/health|\/ready|\/metrics/, 'no internal, health, readiness or metrics route')
})
