import Fastify from 'fastify'
import promClient, { Counter } from 'prom-client'
import t from 'tap'
import { commonErrors, errorEnvelope, metrics, validation } from '../src/index.js'

const Errors = commonErrors('KIT')

async function build(service: string) {
  const app = Fastify({ logger: false })
  await app.register(validation)
  await app.register(errorEnvelope, { prefix: 'KIT', errors: Errors, bodyLimit: 1024 })
  await app.register(metrics, { service })
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.get('/boom', async () => {
    throw new Error('boom')
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** The sum of the samples of `name` whose labels include `labels`, in Prometheus text; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3])
  }
  return sum
}

async function scrape(app: Awaited<ReturnType<typeof build>>) {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res
}

t.test('/metrics answers Prometheus text, without any key', async (t) => {
  const app = await build('kit-a')
  const res = await scrape(app)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /# TYPE http_request_duration_seconds histogram/)
  t.match(res.body, /# TYPE process_cpu_user_seconds_total counter/, 'Node default metrics')
  t.match(res.body, /nodejs_heap_size_used_bytes\{service="kit-a"\}/, 'every metric names the service')
  t.notMatch(res.body, /http_request_summary_seconds/, 'no summary')
})

t.test('the route histogram counts by route pattern, method and status; /metrics is not counted', async (t) => {
  const app = await build('kit-a')
  const route = { route: '/items/:id', method: 'GET', status_code: '200', service: 'kit-a' }
  const before = sample((await scrape(app)).body, 'http_request_duration_seconds_count', route)
  for (const id of ['a', 'b', 'c']) t.equal((await app.inject({ method: 'GET', url: `/items/${id}` })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/boom' })).statusCode, 500)
  t.equal((await app.inject({ method: 'GET', url: '/nowhere/x1' })).statusCode, 404)
  const body = (await scrape(app)).body
  t.equal(sample(body, 'http_request_duration_seconds_count', route) - before, 3)
  t.equal(sample(body, 'http_request_duration_seconds_count', { route: '/boom', status_code: '500' }), 1)
  t.equal(sample(body, 'http_request_duration_seconds_count', { route: '__unmatched__', status_code: '404' }), 1)
  t.equal(sample(body, 'http_request_duration_seconds_bucket', { ...route, le: '+Inf' }) - before, 3)
  t.notMatch(body, /\/items\/a|nowhere/, 'no raw URL in any label')
  t.notMatch(body, /route="\/metrics"/, '/metrics itself is not counted')
})

t.test('two apps in one process keep their own registries; services add their own metrics', async (t) => {
  const a = await build('kit-a')
  const b = await build('kit-b')
  t.not(a.metricsRegistry, b.metricsRegistry)
  const counter = new Counter({ name: 'widgets_total', help: 'widgets', registers: [a.metricsRegistry] })
  counter.inc(2)
  await a.inject({ method: 'GET', url: '/items/1' })
  await a.inject({ method: 'GET', url: '/items/2' })
  await b.inject({ method: 'GET', url: '/items/1' })
  const bodyA = (await scrape(a)).body
  const bodyB = (await scrape(b)).body
  const route = { route: '/items/:id', status_code: '200' }
  t.equal(sample(bodyA, 'http_request_duration_seconds_count', { ...route, service: 'kit-a' }), 2)
  t.equal(sample(bodyB, 'http_request_duration_seconds_count', { ...route, service: 'kit-b' }), 1)
  t.equal(sample(bodyA, 'widgets_total', { service: 'kit-a' }), 2)
  t.notMatch(bodyB, /widgets_total/)
  t.notMatch(bodyB, /service="kit-a"/)
  t.same(promClient.register.getMetricsAsArray(), [], "prom-client's global registry stays empty")
})

t.test('OpenAPI generators skip /metrics', async (t) => {
  const app = Fastify({ logger: false })
  const hidden: unknown[] = []
  app.addHook('onRoute', (route) => {
    if (route.url === '/metrics') hidden.push((route.schema as { hide?: boolean } | undefined)?.hide)
  })
  await app.register(metrics, { service: 'kit-c' })
  t.teardown(() => app.close())
  await app.ready()
  t.same(hidden, [true])
})
