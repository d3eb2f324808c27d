import type { AddressInfo } from 'node:net'
import { waitFor } from '@session-runtime/stack'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'
import { mayRetryElsewhere } from '../src/domain/retry-policy.js'

const KEY = 'key-a-0123456789'
const TOKEN = 'test-internal-token-0123456789'

/**
 * A small real HTTP server standing in for one run-service instance (the balancing does not depend on
 * what the service does): it answers every /api/v1/* request with its name, counts arrivals, and when
 * `die` is set, drops the connection of a request it received without answering (a crash mid-request).
 */
async function startInstance(t: Test, name: string, port = 0) {
  const app = Fastify({ forceCloseConnections: true })
  const state = { name, arrivals: [] as string[], readyPolls: 0, ready: true, die: false }
  app.get('/ready', async (_request, reply) => {
    state.readyPolls += 1
    return reply.code(state.ready ? 200 : 503).send({ status: state.ready ? 'ok' : 'unavailable' })
  })
  app.all('/api/v1/*', async (request, reply) => {
    state.arrivals.push(`${request.method} ${request.url}`)
    if (state.die) {
      request.raw.socket.destroy()
      return reply.hijack()
    }
    return { instance: name }
  })
  await app.listen({ host: '127.0.0.1', port })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await app.close()
  }
  t.teardown(close)
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return { state, url, port: (app.server.address() as AddressInfo).port, close }
}

async function gatewayFor(t: Test, urls: string[], env: Record<string, string> = {}) {
  const logs: string[] = []
  const gateway = await buildApp(
    loadConfig({
      LOG_LEVEL: 'warn',
      INTERNAL_TOKEN: TOKEN,
      API_KEYS: `a=${KEY}`,
      RUN_SERVICE_URL: urls.join(','),
      MESSAGE_STORE_URL: urls[0],
      ...env,
    } as NodeJS.ProcessEnv),
    { keys: parseApiKeys(`a=${KEY}`), logStream: { write: (line) => logs.push(line) } },
  )
  t.teardown(() => gateway.close())
  const rotation = () => gateway.servicePools.get('run-service')?.rotation?.inRotation() ?? []
  return { gateway, logs, rotation }
}

const get = { method: 'GET' as const, url: '/api/v1/flows/', headers: { 'x-api-key': KEY } }
const run = (flow = 'f') => ({
  method: 'POST' as const,
  url: `/api/v1/run/${flow}`,
  headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
  payload: { input_value: 'hi' },
})

t.test('requests are spread over both instances; a stopped one leaves, and is back once /ready says 200', async (t) => {
  const a = await startInstance(t, 'a')
  const b = await startInstance(t, 'b')
  const { gateway, rotation } = await gatewayFor(t, [a.url, b.url], { UPSTREAM_HEALTH_INTERVAL_MS: '100' })

  // 20 requests: on a loaded machine a /ready poll (every 100 ms here) may time out and take an instance out for
  // a moment, so the test asks for both to be used, not for an even split.
  for (let i = 0; i < 20; i++) t.equal((await gateway.inject(get)).statusCode, 200)
  t.ok(
    a.state.arrivals.length >= 1 && b.state.arrivals.length >= 1,
    `both instances get requests (${a.state.arrivals.length} and ${b.state.arrivals.length})`,
  )
  t.equal(a.state.arrivals.length + b.state.arrivals.length, 20)

  await a.close()
  const seenByA = a.state.arrivals.length
  const answers: number[] = []
  for (let i = 0; i < 10; i++) answers.push((await gateway.inject(get)).statusCode)
  for (let i = 0; i < 4; i++) answers.push((await gateway.inject(run())).statusCode)
  t.same(new Set(answers), new Set([200]), 'every request still succeeds')
  t.equal(a.state.arrivals.length, seenByA)
  await waitFor(() => rotation().length === 1, 'the stopped instance leaves the rotation')
  t.same(rotation(), [b.url])

  // the same address again, not ready yet: polled, and kept out
  const again = await startInstance(t, 'a-again', a.port)
  again.state.ready = false
  await waitFor(() => again.state.readyPolls >= 2, 'the gateway polls the instance that is back')
  t.same(rotation(), [b.url], 'not ready: still out of rotation')
  again.state.ready = true
  await waitFor(() => rotation().length === 2, 'ready again: back in rotation')
  for (let i = 0; i < 10; i++) t.equal((await gateway.inject(get)).statusCode, 200)
  t.ok(again.state.arrivals.length > 0, 'the instance back takes requests again')
})

t.test('a run POST to an instance that refuses the connection goes to the other one (nothing was sent)', async (t) => {
  const a = await startInstance(t, 'a')
  const b = await startInstance(t, 'b')
  // no polls during the test: only the refused connection takes A out
  const { gateway, logs, rotation } = await gatewayFor(t, [a.url, b.url], { UPSTREAM_HEALTH_INTERVAL_MS: '600000' })
  await a.close()
  const runs = []
  for (let i = 0; i < 4; i++) runs.push(await gateway.inject(run(`flow-${i}`)))
  t.same(
    runs.map((res) => [res.statusCode, res.json().instance]),
    [0, 1, 2, 3].map(() => [200, 'b']),
  )
  t.same(
    b.state.arrivals,
    [0, 1, 2, 3].map((i) => `POST /api/v1/run/flow-${i}`),
    'each run arrived once',
  )
  t.same(rotation(), [b.url])
  t.match(logs.join(''), /"reason":"connection failed: ECONNREFUSED","msg":"run-service instance out of rotation"/)
})

t.test('an instance dying mid-request: a run POST is not replayed (503), a GET is', async (t) => {
  const a = await startInstance(t, 'a')
  const b = await startInstance(t, 'b')
  const { gateway } = await gatewayFor(t, [a.url, b.url], { UPSTREAM_HEALTH_INTERVAL_MS: '600000' })
  a.state.die = true

  // sent until one lands on A (round robin: the first or the second)
  const runs = []
  while (a.state.arrivals.length === 0 && runs.length < 6) runs.push(await gateway.inject(run(`r${runs.length}`)))
  t.equal(a.state.arrivals.length, 1, 'one run reached the dying instance')
  const arrivals = a.state.arrivals.length + b.state.arrivals.length
  t.equal(arrivals, runs.length, 'no run arrived twice: none was replayed on the other instance')
  const failed = runs.filter((res) => res.statusCode !== 200)
  t.equal(failed.length, 1)
  t.equal(failed[0]?.statusCode, 503)
  t.same(failed[0]?.json(), { detail: 'The run-service is unavailable', code: 'GATEWAY_UPSTREAM_UNAVAILABLE' })
  t.notOk(b.state.arrivals.includes(a.state.arrivals[0] as string), 'the run that died was not sent to B')
})

t.test('a GET whose instance dies mid-request is answered by the other one', async (t) => {
  const a = await startInstance(t, 'a')
  const b = await startInstance(t, 'b')
  const { gateway } = await gatewayFor(t, [a.url, b.url], { UPSTREAM_HEALTH_INTERVAL_MS: '600000' })
  a.state.die = true
  const answers = []
  while (a.state.arrivals.length === 0 && answers.length < 6) answers.push(await gateway.inject(get))
  t.equal(a.state.arrivals.length, 1)
  t.same(
    answers.map((res) => [res.statusCode, res.json().instance]),
    answers.map(() => [200, 'b']),
  )
  t.equal(b.state.arrivals.length, answers.length, 'the GET that died on A was sent again, to B')
})

t.test('every instance down: a fast 503 in the envelope', async (t) => {
  const a = await startInstance(t, 'a')
  const b = await startInstance(t, 'b')
  const { gateway, rotation } = await gatewayFor(t, [a.url, b.url], { UPSTREAM_HEALTH_INTERVAL_MS: '600000' })
  await a.close()
  await b.close()
  for (const request of [get, run()]) {
    const started = Date.now()
    const res = await gateway.inject(request)
    t.equal(res.statusCode, 503)
    t.same(res.json(), { detail: 'The run-service is unavailable', code: 'GATEWAY_UPSTREAM_UNAVAILABLE' })
    t.ok(Date.now() - started < 2000, 'fails fast')
  }
  t.equal(rotation().length, 1, 'the last instance stays in rotation')
})

t.test('retry policy: what may go to another instance', async (t) => {
  t.ok(mayRetryElsewhere('POST', '/api/v1/run', 'ECONNREFUSED'), 'a run never sent')
  t.notOk(mayRetryElsewhere('POST', '/api/v1/run', 'UND_ERR_SOCKET'), 'a run that may have started')
  t.notOk(mayRetryElsewhere('POST', '/api/v1/run', 'ECONNRESET'))
  t.notOk(mayRetryElsewhere('POST', '/api/v1/run', 'UND_ERR_HEADERS_TIMEOUT'))
  t.ok(mayRetryElsewhere('GET', '/api/v1/flows', 'ECONNRESET'))
  t.ok(mayRetryElsewhere('HEAD', '/api/v1/monitor', 'UND_ERR_SOCKET'))
  t.ok(mayRetryElsewhere('DELETE', '/api/v1/monitor', 'UND_ERR_SOCKET'))
  t.ok(mayRetryElsewhere('PUT', '/api/v1/flows', 'ECONNRESET'))
  t.notOk(mayRetryElsewhere('PATCH', '/api/v1/flows', 'ECONNRESET'))
  t.notOk(mayRetryElsewhere('POST', '/api/v1/flows', 'UND_ERR_SOCKET'))
  t.ok(mayRetryElsewhere('POST', '/api/v1/flows', 'UND_ERR_CONNECT_TIMEOUT'))
  t.notOk(mayRetryElsewhere('GET', '/api/v1/flows', 'UND_ERR_ABORTED'), 'the caller went away')
  t.notOk(mayRetryElsewhere('GET', '/api/v1/flows', undefined))
})

t.test('config: comma lists of URLs; a bad entry fails the start naming it', async (t) => {
  const base = { INTERNAL_TOKEN: TOKEN }
  const config = loadConfig({
    ...base,
    RUN_SERVICE_URL: 'http://10.0.0.1:7861, http://10.0.0.2:7861',
    MESSAGE_STORE_URL: 'http://10.0.0.3:7862',
  })
  t.equal(config.RUN_SERVICE_URL, 'http://10.0.0.1:7861, http://10.0.0.2:7861')
  t.equal(config.UPSTREAM_HEALTH_INTERVAL_MS, 1000)
  t.throws(() => loadConfig({ ...base, RUN_SERVICE_URL: 'http://10.0.0.1:7861,10.0.0.2:7861' }), {
    message: /RUN_SERVICE_URL: entry 2 of 2 \("10\.0\.0\.2:7861"\) is not (a|an http\(s\)) URL/,
  })
  t.throws(() => loadConfig({ ...base, MESSAGE_STORE_URL: 'http://a:1,ftp://b:2' }), {
    message: 'MESSAGE_STORE_URL: entry 2 of 2 ("ftp://b:2") is not an http(s) URL',
  })
  t.throws(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: 'redis://a:1' }), { message: /REDIS_CLUSTER_NODES/ })
  t.equal(loadConfig({ ...base, REDIS_CLUSTER_NODES: 'a:7000, b:7001' }).REDIS_CLUSTER_NODES, 'a:7000, b:7001')
  t.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'a:7000' }), {
    message: /not both/,
  })
})
