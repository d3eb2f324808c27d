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
  t.same(none.json(), { detail: 'Missing or invalid internal token', code: 'RUNSVC_UNAUTHORIZED' })
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
    '/api/v1/flows/',
    '/api/v1/flows/{id}',
    '/api/v1/responses',
    '/api/v1/run/{flow_id_or_endpoint_name}',
  ])
  t.same(Object.keys(doc.paths['/api/v1/flows/{id}'] ?? {}).sort(), ['delete', 'get', 'patch'])
  const ops = Object.values(doc.paths).flatMap((item) => Object.values(item))
  t.ok(
    ops.every((op) => op.summary && op.tags?.length === 1 && op.responses),
    'every operation has a summary and one tag',
  )
  t.same(doc.paths['/api/v1/run/{flow_id_or_endpoint_name}']?.post?.tags, ['Run'])
  t.same(doc.paths['/api/v1/flows/']?.get?.tags, ['Flows'])
  t.notMatch(res.body, /\/internal|\/health|\/ready|\/metrics/, 'no internal, health, readiness or metrics route')
})
