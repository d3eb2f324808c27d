import { randomUUID } from 'node:crypto'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, internalHeaders } from './helpers/app.js'

t.test('bad input is answered in the envelope with the right status, never a 500', async (t) => {
  const app = await buildTestApp(t, { env: { FLOWS_BODY_LIMIT_BYTES: '4096' } })
  const headers = internalHeaders()
  const post = (payload: string, extra: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers: { ...headers, 'content-type': 'application/json', ...extra },
      payload,
    })

  const malformed = await post('{"name": "x", "data": ')
  t.equal(malformed.statusCode, 400)
  t.strictSame(malformed.json(), { detail: 'Malformed JSON in request body', code: 'RUNSVC_BAD_REQUEST' })

  const wrongTypes = await post(JSON.stringify({ name: 42, data: { nodes: [] } }))
  t.equal(wrongTypes.statusCode, 422)
  t.equal(wrongTypes.json().code, 'RUNSVC_VALIDATION')
  t.match(wrongTypes.json().detail, /name/)

  const noData = await post(JSON.stringify({ name: 'x' }))
  t.equal(noData.statusCode, 422)
  t.match(noData.json().detail, /data/)

  const nodesNotArray = await post(JSON.stringify({ name: 'x', data: { nodes: {} } }))
  t.equal(nodesNotArray.statusCode, 422)

  const badId = await post(JSON.stringify({ id: 'not-a-uuid', name: 'x', data: { nodes: [] } }))
  t.equal(badId.statusCode, 422, 'a body id that is not a UUID')

  const big = await post(JSON.stringify({ name: 'x', description: 'y'.repeat(5000), data: { nodes: [] } }))
  t.equal(big.statusCode, 413)
  t.strictSame(big.json(), {
    detail: 'Request body is larger than the limit of 4096 bytes',
    code: 'RUNSVC_PAYLOAD_TOO_LARGE',
  })

  const text = await post('<flow/>', { 'content-type': 'application/xml' })
  t.equal(text.statusCode, 415)
  t.equal(text.json().code, 'RUNSVC_UNSUPPORTED_MEDIA_TYPE')

  const nul = await post(JSON.stringify({ name: 'a\u0000b', data: { nodes: [] } }))
  t.equal(nul.statusCode, 422, 'a NUL that Postgres cannot store is the caller’s mistake')

  for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
    const res = await app.inject({
      method,
      url: '/api/v1/flows/not-a-uuid',
      headers,
      ...(method === 'PATCH' ? { payload: { name: 'x' } } : {}),
    })
    t.equal(res.statusCode, 422, `${method} with an invalid uuid`)
    t.equal(res.json().code, 'RUNSVC_VALIDATION')
  }

  const badEncoding = await app.inject({ method: 'GET', url: '/api/v1/flows/%E0%A4%A', headers })
  t.equal(badEncoding.statusCode, 400)
  t.equal(badEncoding.json().code, 'RUNSVC_BAD_REQUEST')

  const unknownRoute = await app.inject({ method: 'GET', url: '/api/v1/nope', headers })
  t.equal(unknownRoute.statusCode, 404)
  t.equal(unknownRoute.json().code, 'RUNSVC_ROUTE_NOT_FOUND')
})

t.test('every flows route needs the internal token and a tenant', async (t) => {
  const app = await buildTestApp(t)
  const id = randomUUID()
  const routes = [
    { method: 'POST', url: '/api/v1/flows/', payload: { name: 'x', data: { nodes: [] } } },
    { method: 'GET', url: '/api/v1/flows/' },
    { method: 'GET', url: `/api/v1/flows/${id}` },
    { method: 'PATCH', url: `/api/v1/flows/${id}`, payload: { name: 'x' } },
    { method: 'DELETE', url: `/api/v1/flows/${id}` },
  ] as const
  for (const route of routes) {
    const missing = await app.inject({ ...route, headers: { [TENANT_HEADER]: 'tenant-a' } })
    t.equal(missing.statusCode, 401, `${route.method} ${route.url} without a token`)
    t.strictSame(missing.json(), { detail: 'Missing or invalid internal token', code: 'RUNSVC_UNAUTHORIZED' })
    const wrong = await app.inject({
      ...route,
      headers: { [TENANT_HEADER]: 'tenant-a', [INTERNAL_TOKEN_HEADER]: 'wrong-token-0123456789' },
    })
    t.equal(wrong.statusCode, 401, `${route.method} ${route.url} with a wrong token`)
    const noTenant = await app.inject({
      ...route,
      headers: { [INTERNAL_TOKEN_HEADER]: internalHeaders()[INTERNAL_TOKEN_HEADER] },
    })
    t.equal(noTenant.statusCode, 400, `${route.method} ${route.url} without a tenant`)
    t.equal(noTenant.json().code, 'RUNSVC_MISSING_TENANT')
  }
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'health needs no token')
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().status, 'ok')
})
