// Only the other services reach the run-service: every /internal and /api route refuses a request without the
// internal token, with a wrong one, and with a tenant's API key in its place (401). The routes are read from
// the app itself, so a route added later is checked too.
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, INTERNAL_TOKEN, internalHeaders } from './helpers/app.js'

const API_KEY = 'key-a-0123456789'

/** Every method × path the app serves, from `printRoutes({ commonPrefix: false })` (a child's path extends its parent's). */
function routesOf(app: { printRoutes: (opts: { commonPrefix: boolean }) => string }) {
  const routes: { method: string; url: string }[] = []
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line)
    if (!m) continue
    const depth = (m[1] ?? '').length / 4
    // `:a|:b`: two routes on one node, told apart by method only; either name fills in the same
    const path = (stack[depth - 1] ?? '') + (m[2] ?? '').split('|')[0]
    stack[depth] = path
    stack.length = depth + 1
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) routes.push({ method, url: path })
  }
  return routes
}

const concrete = (url: string) => url.replace(/:[A-Za-z_]+/g, '00000000-0000-4000-8000-000000000001')
const withBody = (method: string) => (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? { payload: {} } : {})

const app = await buildTestApp(t)
const routes = routesOf(app)
const guarded = routes.filter((r) => r.url.startsWith('/internal/') || r.url.startsWith('/api/'))

t.test('the routes are read from the app', async (t) => {
  for (const [method, url] of [
    ['POST', '/api/v1/flows'],
    ['GET', '/api/v1/flows'],
    ['GET', '/api/v1/flows/:id'],
    ['PATCH', '/api/v1/flows/:id'],
    ['DELETE', '/api/v1/flows/:id'],
    ['POST', '/api/v1/run/:flow_id_or_endpoint_name'],
    ['GET', '/internal/openapi.json'],
  ]) {
    t.ok(
      routes.some((r) => r.method === method && r.url === url),
      `${method} ${url} listed`,
    )
  }
  t.ok(
    routes.every((r) => ['/health', '/ready', '/metrics'].includes(r.url) || guarded.includes(r)),
    'every other route is /health, /ready or /metrics (no secret there)',
  )
})

t.test('every /internal and /api route refuses callers without the internal token', async (t) => {
  const refusals: [string, Record<string, string>][] = [
    ['no token', { [TENANT_HEADER]: 'tenant-a' }],
    ['a wrong token', { [INTERNAL_TOKEN_HEADER]: `${INTERNAL_TOKEN}x`, [TENANT_HEADER]: 'tenant-a' }],
    ['an empty token', { [INTERNAL_TOKEN_HEADER]: '', [TENANT_HEADER]: 'tenant-a' }],
    ['a tenant API key', { 'x-api-key': API_KEY, [TENANT_HEADER]: 'tenant-a' }],
    ['a tenant API key as the token', { [INTERNAL_TOKEN_HEADER]: API_KEY, [TENANT_HEADER]: 'tenant-a' }],
    ['the token as a bearer', { authorization: `Bearer ${INTERNAL_TOKEN}`, [TENANT_HEADER]: 'tenant-a' }],
  ]
  for (const { method, url } of guarded) {
    const path = concrete(url)
    for (const [name, headers] of refusals) {
      const res = await app.inject({ method: method as 'GET', url: path, headers, ...withBody(method) })
      t.equal(res.statusCode, 401, `${method} ${path}, ${name}: 401`)
      if (method !== 'HEAD') t.match(res.json(), { code: /_UNAUTHORIZED$/ }, `${method} ${path}, ${name}: named`)
    }
    // the same request with the token passes the check (whatever the route then makes of it)
    const ok = await app.inject({ method: method as 'GET', url: path, headers: internalHeaders(), ...withBody(method) })
    t.not(ok.statusCode, 401, `${method} ${path} with the token: past the check (${ok.statusCode})`)
  }
})
