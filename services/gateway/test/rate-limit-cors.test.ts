import t from 'tap'
import { KEY_A, KEY_B, startStack } from './helpers/stack.js'

const flows = (key?: string, headers: Record<string, string> = {}) => ({
  method: 'GET' as const,
  url: '/api/v1/flows/',
  headers: { ...(key ? { 'x-api-key': key } : {}), ...headers },
})

t.test('no limit by default', async (t) => {
  const { gateway } = await startStack(t)
  const codes = new Set<number>()
  for (let i = 0; i < 30; i++) codes.add((await gateway.inject(flows(KEY_A))).statusCode)
  t.same([...codes], [200])
})

t.test('RATE_LIMIT_MAX: counted per API key, 429 in the error envelope with Retry-After', async (t) => {
  const { gateway } = await startStack(t, { env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' } })
  const first = []
  for (let i = 0; i < 3; i++) first.push(await gateway.inject(flows(KEY_A)))
  t.same(
    first.map((r) => r.statusCode),
    [200, 200, 200],
  )
  t.equal(first[0]?.headers['x-ratelimit-limit'], '3')
  t.equal(first[2]?.headers['x-ratelimit-remaining'], '0')

  const limited = await gateway.inject(flows(KEY_A))
  t.equal(limited.statusCode, 429)
  t.same(limited.json(), {
    detail: 'Rate limit exceeded: 3 requests per 60 s for this API key',
    code: 'GATEWAY_RATE_LIMITED',
  })
  t.ok(Number(limited.headers['retry-after']) > 0, 'says when to retry')
  // the key in the query counts as the same key
  t.equal((await gateway.inject({ url: `/api/v1/flows/?x-api-key=${KEY_A}` })).statusCode, 429)

  // another key has its own budget; no key and a wrong key are answered by the key check, not the limit
  t.equal((await gateway.inject(flows(KEY_B))).statusCode, 200)
  t.equal((await gateway.inject(flows())).statusCode, 401)
  t.equal((await gateway.inject(flows('not-a-key'))).statusCode, 403)
  // health and readiness are never limited
  t.equal((await gateway.inject({ url: '/health' })).statusCode, 200)
})

t.test('CORS is off unless CORS_ORIGINS names origins', async (t) => {
  const { gateway } = await startStack(t)
  const res = await gateway.inject(flows(KEY_A, { origin: 'https://chat.example.com' }))
  t.equal(res.statusCode, 200)
  t.notOk(res.headers['access-control-allow-origin'])
})

t.test('CORS_ORIGINS: listed origins get CORS headers; preflight needs no key', async (t) => {
  const { gateway } = await startStack(t, {
    env: { CORS_ORIGINS: 'https://chat.example.com, https://admin.example.com' },
  })
  const preflight = await gateway.inject({
    method: 'OPTIONS',
    url: '/api/v1/run/some-flow',
    headers: {
      origin: 'https://admin.example.com',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'x-api-key, content-type',
    },
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://admin.example.com')
  t.match(String(preflight.headers['access-control-allow-methods']), /POST/)

  const allowed = await gateway.inject(flows(KEY_A, { origin: 'https://chat.example.com' }))
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.headers['access-control-allow-origin'], 'https://chat.example.com')
  t.match(String(allowed.headers['access-control-expose-headers']), /x-next-cursor/)

  const other = await gateway.inject(flows(KEY_A, { origin: 'https://evil.example.com' }))
  t.notOk(other.headers['access-control-allow-origin'], 'an unlisted origin gets no CORS header')
})

t.test('CORS_ORIGINS=*: any origin', async (t) => {
  const { gateway } = await startStack(t, { env: { CORS_ORIGINS: '*' } })
  const res = await gateway.inject(flows(KEY_A, { origin: 'https://anywhere.example.org' }))
  t.equal(res.headers['access-control-allow-origin'], '*')
})
