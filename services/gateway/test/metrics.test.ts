import t from 'tap'
import { KEY_A, startStack } from './helpers/stack.js'

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

const { gateway, store, runService } = await startStack(t)

async function scrape(app: { inject: typeof gateway.inject }): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body
}

t.test('/metrics on the public port: Prometheus text, no API key needed', async (t) => {
  const res = await gateway.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /# TYPE auth_failures_total counter/)
  t.match(res.body, /process_cpu_user_seconds_total\{service="gateway"\}/)
  t.equal(sample(res.body, 'auth_failures_total', { reason: 'missing_key' }), 0, 'every reason from the start')
})

t.test('proxied requests by route pattern and status; auth failures by reason', async (t) => {
  const before = await scrape(gateway)
  const flows = await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': KEY_A } })
  t.equal(flows.statusCode, 200)
  const sessions = await gateway.inject({ url: '/api/v1/monitor/sessions', headers: { 'x-api-key': KEY_A } })
  t.equal(sessions.statusCode, 200, sessions.body)
  const unknown = '00000000-0000-4000-8000-00000000abcd'
  const missing = await gateway.inject({ url: `/api/v1/flows/${unknown}`, headers: { 'x-api-key': KEY_A } })
  t.equal(missing.statusCode, 404)
  t.equal((await gateway.inject({ url: '/api/v1/flows/' })).statusCode, 401)
  t.equal((await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': 'nope' } })).statusCode, 403)
  t.equal((await gateway.inject({ url: '/api/v1/monitor/messages?x-api-key=wrong' })).statusCode, 403)
  const after = await scrape(gateway)
  const moved = (name: string, labels: Record<string, string>) =>
    sample(after, name, labels) - sample(before, name, labels)

  t.equal(moved('auth_failures_total', { reason: 'missing_key' }), 1)
  t.equal(moved('auth_failures_total', { reason: 'invalid_key' }), 2)
  const count = 'http_request_duration_seconds_count'
  // `/api/v1/flows/` is the proxy's prefix route (trailing slash ignored); deeper paths are `/api/v1/flows/*`
  t.equal(moved(count, { route: '/api/v1/flows', method: 'GET', status_code: '200' }), 1)
  t.equal(moved(count, { route: '/api/v1/monitor/*', method: 'GET', status_code: '200' }), 1)
  t.equal(moved(count, { route: '/api/v1/flows', status_code: '401' }), 1)
  t.equal(moved(count, { route: '/api/v1/flows', status_code: '403' }), 1)
  t.equal(moved(count, { route: '/api/v1/monitor/*', status_code: '403' }), 1)
  t.equal(moved(count, { route: '/api/v1/flows/*', method: 'GET', status_code: '404' }), 1)
  t.notMatch(after, /x-api-key=|nope|wrong|abcd/, 'no raw URL, ID or key in any label')
})

t.test('the gateway and the services behind it, in one process, keep their own metrics', async (t) => {
  const [g, r, s] = await Promise.all([scrape(gateway), scrape(runService), scrape(store)])
  t.match(g, /service="gateway"/)
  t.notMatch(g, /service="(run-service|message-store)"/)
  t.match(r, /# TYPE runs_total counter/)
  t.notMatch(r, /service="(gateway|message-store)"/)
  t.match(s, /# TYPE messages_stored_total counter/)
  t.notMatch(s, /service="(gateway|run-service)"/)
})
