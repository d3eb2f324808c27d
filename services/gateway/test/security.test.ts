// Every route the gateway registers asks for an API key, except an explicit allow-list; /metrics asks for
// METRICS_TOKEN when it is set; every answer carries hardened headers (helmet), with the CSPs of /docs and
// /playground/ their own. No downstream is needed: keys are checked before anything is forwarded.
import type { RouteOptions } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'
import { DOCS_CSP } from '../src/routes/docs/index.js'
import { PLAYGROUND_CSP } from '../src/routes/playground/index.js'

const INTERNAL_TOKEN = 'test-internal-token-0123456789'
const METRICS_TOKEN = 'metrics-token-0123456789'
const KEY = 'key-a-0123456789'

async function gateway(t: Test, env: Record<string, string> = {}) {
  const routes: { method: string; url: string }[] = []
  const app = await buildApp(
    loadConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN,
      API_KEYS: `a=${KEY}`,
      RUN_SERVICE_URL: 'http://127.0.0.1:1',
      MESSAGE_STORE_URL: 'http://127.0.0.1:1',
      READY_TIMEOUT_MS: '300',
      ...env,
    } as NodeJS.ProcessEnv),
    {
      keys: parseApiKeys(`a=${KEY}`),
      onRoute: (route: RouteOptions) => {
        for (const method of [route.method].flat()) routes.push({ method, url: route.url })
      },
    },
  )
  await app.ready()
  t.teardown(() => app.close())
  return { app, routes }
}

/** Routes that need no API key: liveness, readiness, the API docs, the Playground's files, /metrics (own token). */
const PUBLIC = [/^\/health$/, /^\/ready$/, /^\/docs(\/.*)?$/, /^\/playground(\/.*)?$/]
const isPublic = (url: string) => PUBLIC.some((re) => re.test(url))

/** A concrete URL for a route pattern: parameters and wildcards filled in. */
const concrete = (url: string) =>
  url.replace(/:[A-Za-z_]+/g, '00000000-0000-4000-8000-000000000001').replace(/\*$/, 'some/deeper/path')

/** A body for the methods that take one (an empty object passes any content-type parser). */
const bodyFor = (method: string) => (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? {} : undefined)

t.test('every registered route but the allow-list answers 401 without a key, 403 with a wrong one', async (t) => {
  const { app, routes } = await gateway(t, { METRICS_TOKEN })
  const urls = new Set(routes.map((r) => r.url))
  // the listing works: the proxied prefixes and the public routes are all in it
  for (const url of [
    '/api/v1/run',
    '/api/v1/run/*',
    '/api/v1/responses',
    '/api/v1/flows',
    '/api/v1/flows/*',
    '/api/v1/monitor/*',
  ]) {
    t.ok(urls.has(url), `listed: ${url}`)
  }
  for (const url of ['/health', '/ready', '/docs', '/docs/json', '/playground/', '/metrics']) {
    t.ok(urls.has(url), `listed: ${url}`)
  }

  const guarded = routes.filter((r) => !isPublic(r.url) && r.url !== '/metrics')
  t.ok(guarded.length >= 30, `${guarded.length} method × route pairs need a key`)
  for (const { method, url } of guarded) {
    const path = concrete(url)
    const payload = bodyFor(method)
    const none = await app.inject({ method: method as 'GET', url: path, ...(payload ? { payload } : {}) })
    t.equal(none.statusCode, 401, `${method} ${path}: 401 without a key`)
    if (method !== 'HEAD') t.equal(none.json().code, 'GATEWAY_MISSING_API_KEY', `${method} ${path}: named`)
    const wrong = await app.inject({
      method: method as 'GET',
      url: path,
      headers: { 'x-api-key': 'not-a-key' },
      ...(payload ? { payload } : {}),
    })
    t.equal(wrong.statusCode, 403, `${method} ${path}: 403 with an unknown key`)
    // the internal token is not an API key
    const internal = await app.inject({
      method: method as 'GET',
      url: path,
      headers: { 'x-api-key': INTERNAL_TOKEN, 'x-internal-token': INTERNAL_TOKEN },
      ...(payload ? { payload } : {}),
    })
    t.equal(internal.statusCode, 403, `${method} ${path}: the internal token opens nothing`)
  }

  const open = routes.filter((r) => isPublic(r.url) && r.method !== 'HEAD')
  for (const { method, url } of open) {
    const res = await app.inject({ method: method as 'GET', url: concrete(url) })
    t.not(res.statusCode, 401, `${method} ${url}: no key asked`)
    t.not(res.statusCode, 403, `${method} ${url}: no key asked`)
  }
})

t.test('internal routes of the services are not routed by the gateway, with or without a key', async (t) => {
  const { app } = await gateway(t)
  for (const url of ['/internal/history', '/internal/messages', '/internal/openapi.json']) {
    const res = await app.inject({ url, headers: { 'x-api-key': KEY, 'x-internal-token': INTERNAL_TOKEN } })
    t.equal(res.statusCode, 404, `${url}: not routed`)
  }
})

t.test('/metrics with METRICS_TOKEN: only `authorization: Bearer <token>` opens it', async (t) => {
  const { app } = await gateway(t, { METRICS_TOKEN })
  const get = (headers: Record<string, string> = {}) => app.inject({ url: '/metrics', headers })
  const missing = await get()
  t.equal(missing.statusCode, 401)
  t.equal(missing.json().code, 'GATEWAY_METRICS_UNAUTHORIZED')
  t.equal((await get({ authorization: `Bearer ${METRICS_TOKEN}x` })).statusCode, 401, 'a wrong token')
  t.equal((await get({ authorization: METRICS_TOKEN })).statusCode, 401, 'not a bearer')
  t.equal((await get({ authorization: `Bearer ${KEY}` })).statusCode, 401, 'an API key is no metrics token')
  t.equal((await get({ 'x-api-key': KEY })).statusCode, 401, 'nor in its own header')
  t.equal((await get({ authorization: `Bearer ${INTERNAL_TOKEN}` })).statusCode, 401, 'nor the internal token')
  const ok = await get({ authorization: `Bearer ${METRICS_TOKEN}` })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /# TYPE auth_failures_total counter/)
})

t.test('/metrics without METRICS_TOKEN stays open (the default), and a short token is refused at start', async (t) => {
  const { app } = await gateway(t)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 200)
  t.throws(() => loadConfig({ INTERNAL_TOKEN, METRICS_TOKEN: 'short' } as NodeJS.ProcessEnv))
})

/** `a 'b'; c` → { a: "'b'", c: '' } */
function directives(csp: string): Record<string, string> {
  return Object.fromEntries(
    csp
      .split(';')
      .map((d) => d.trim())
      .filter(Boolean)
      .map((d) => {
        const [name = '', ...values] = d.split(/\s+/)
        return [name, values.join(' ')]
      }),
  )
}

const HARDENED = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'x-dns-prefetch-control': 'off',
  'x-permitted-cross-domain-policies': 'none',
  'strict-transport-security': 'max-age=31536000',
}

t.test('hardened headers on every kind of answer; the API allows nothing to load or frame', async (t) => {
  const { app } = await gateway(t)
  const answers = {
    health: await app.inject({ url: '/health' }),
    '401': await app.inject({ url: '/api/v1/flows/' }),
    '403': await app.inject({ url: '/api/v1/monitor/messages', headers: { 'x-api-key': 'nope' } }),
    '404': await app.inject({ url: '/no/such/route' }),
    '503 (downstream down)': await app.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': KEY } }),
  }
  t.equal(answers['503 (downstream down)'].statusCode, 503)
  for (const [name, res] of Object.entries(answers)) {
    t.match(res.headers, HARDENED, `${name}: hardened`)
    t.notOk(res.headers['x-powered-by'], `${name}: no x-powered-by`)
    t.same(
      directives(String(res.headers['content-security-policy'])),
      { 'default-src': "'none'", 'base-uri': "'none'", 'form-action': "'none'", 'frame-ancestors': "'none'" },
      `${name}: API CSP`,
    )
  }
})

t.test(
  '/docs and /playground/ keep CSPs their pages work with, no inline script, nothing from elsewhere',
  async (t) => {
    const { app } = await gateway(t)
    for (const url of ['/docs', '/docs/static/swagger-initializer.js', '/docs/json']) {
      const res = await app.inject({ url })
      t.equal(res.statusCode, 200, url)
      t.equal(res.headers['content-security-policy'], DOCS_CSP, `${url}: the docs CSP`)
      t.match(res.headers, HARDENED, `${url}: hardened`)
    }
    const docs = directives(DOCS_CSP)
    t.equal(docs['script-src'], "'self'", 'docs: scripts from the gateway only')
    t.equal(docs['frame-ancestors'], "'none'")
    t.notMatch(DOCS_CSP, /https?:|\*|unsafe-eval/, 'docs: nothing from elsewhere')

    const page = await app.inject({ url: '/playground/' })
    t.equal(page.statusCode, 200)
    t.equal(page.headers['content-security-policy'], PLAYGROUND_CSP, 'the Playground sets its own CSP')
    t.match(page.headers, HARDENED, '/playground/: hardened')
  },
)
