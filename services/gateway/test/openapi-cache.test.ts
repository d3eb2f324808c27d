import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { createDocumentCache } from '../src/domain/openapi/downstream.js'

const TOKEN = 'test-internal-token-0123456789'
const doc = (title: string) => ({ openapi: '3.1.0', info: { title, version: '0' }, paths: {} })

/** A downstream whose document route answers `state.status` and `state.body`, counting calls. */
async function downstream(t: Test) {
  const state = { calls: 0, status: 200, body: doc('v1') as unknown, tokens: [] as unknown[] }
  const app = Fastify({ logger: false })
  app.get('/internal/openapi.json', async (request, reply) => {
    state.calls++
    state.tokens.push(request.headers['x-internal-token'])
    return reply.code(state.status).send(state.body)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  return { state, url: `http://127.0.0.1:${port}`, close: () => app.close() }
}

t.test('fetched with the token, kept for the TTL, then fetched again', async (t) => {
  const down = await downstream(t)
  let clock = 1_000
  const cache = createDocumentCache({
    sources: [{ name: 'svc', urls: [down.url], prefixes: ['/api/v1/x'] }],
    path: '/internal/openapi.json',
    tokenHeader: 'x-internal-token',
    internalToken: TOKEN,
    timeoutMs: 2_000,
    ttlMs: 60_000,
    now: () => clock,
  })
  t.match(cache.parts(), [{ name: 'svc', document: undefined, error: 'not fetched yet' }])
  await Promise.all([cache.refresh(), cache.refresh()])
  t.equal(down.state.calls, 1, 'concurrent refreshes share one fetch')
  t.same(down.state.tokens, [TOKEN])
  t.match(cache.parts(), [
    { name: 'svc', prefixes: ['/api/v1/x'], document: { info: { title: 'v1' } }, error: undefined },
  ])

  down.state.body = doc('v2')
  clock += 59_999
  await cache.refresh()
  t.equal(down.state.calls, 1, 'fresh: not fetched')
  clock += 1
  await cache.refresh()
  t.equal(down.state.calls, 2, 'stale: fetched again')
  t.match(cache.parts(), [{ document: { info: { title: 'v2' } } }])
})

t.test('a failure keeps the last good document and is retried on the next refresh', async (t) => {
  const down = await downstream(t)
  let clock = 0
  const cache = createDocumentCache({
    sources: [{ name: 'svc', urls: [down.url], prefixes: ['/a'] }],
    path: '/internal/openapi.json',
    tokenHeader: 'x-internal-token',
    internalToken: TOKEN,
    timeoutMs: 2_000,
    ttlMs: 10,
    now: () => clock,
  })
  down.state.status = 401
  await cache.refresh()
  t.match(cache.parts(), [{ document: undefined, error: 'HTTP 401' }])
  down.state.status = 200
  down.state.body = { not: 'openapi' }
  await cache.refresh()
  t.equal(down.state.calls, 2, 'a miss is fetched again at once')
  t.match(cache.parts(), [{ document: undefined, error: 'the answer is not an OpenAPI 3 document' }])
  down.state.body = doc('good')
  await cache.refresh()
  t.match(cache.parts(), [{ document: { info: { title: 'good' } }, error: undefined }])

  await down.close()
  clock += 11
  await cache.refresh()
  t.match(cache.parts(), [{ document: { info: { title: 'good' } }, error: undefined }], 'down: the last good one')
  await cache.refresh()
  t.equal(down.state.calls, 3, 'nothing answered since it went down')
})
