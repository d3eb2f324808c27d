import t from 'tap'
import { buildTestApp, internalHeaders, type MessageStore, startMessageStore, type TestApp } from './helpers/app.js'
import { fixture } from './helpers/flows.js'

const store: MessageStore = await startMessageStore(t)
const app: TestApp = await buildTestApp(t, { messageStoreUrl: store.url })

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

async function scrape(target: TestApp): Promise<string> {
  const res = await target.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body
}

async function importSimple(target: TestApp): Promise<string> {
  const res = await target.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(),
    payload: fixture('simple'),
  })
  if (res.statusCode !== 201) throw new Error(`import: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

function runFlow(target: TestApp, flow: string, stream = false) {
  return target.inject({
    method: 'POST',
    url: `/api/v1/run/${flow}${stream ? '?stream=true' : ''}`,
    headers: internalHeaders(),
    payload: { input_value: 'ping', session_id: 'metrics-1' },
  })
}

const RUN_ROUTE = '/api/v1/run/:flow_id_or_endpoint_name'

t.test('/metrics: Prometheus text without internal headers, named run-service', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /# TYPE runs_total counter/)
  t.match(res.body, /# TYPE run_duration_seconds histogram/)
  t.match(res.body, /process_cpu_user_seconds_total\{service="run-service"\}/)
  t.equal(sample(res.body, 'runs_total', { outcome: 'ok', mode: 'sync' }), 0, 'every series from the start')
})

t.test('runs_total and the route histogram count runs by outcome and mode', async (t) => {
  const id = await importSimple(app)
  const before = await scrape(app)

  for (let i = 0; i < 2; i++) t.equal((await runFlow(app, id)).statusCode, 200)
  const streamed = await runFlow(app, id, true)
  t.equal(streamed.statusCode, 200)
  t.match(streamed.body, /"event":\s*"end"/)
  t.equal((await runFlow(app, '00000000-0000-4000-8000-000000000000')).statusCode, 404)
  const noAuth = await app.inject({ method: 'POST', url: `/api/v1/run/${id}`, payload: {} })
  t.equal(noAuth.statusCode, 401)

  const after = await scrape(app)
  const moved = (name: string, labels: Record<string, string>) =>
    sample(after, name, labels) - sample(before, name, labels)
  t.equal(moved('runs_total', { outcome: 'ok', mode: 'sync' }), 2)
  t.equal(moved('runs_total', { outcome: 'ok', mode: 'stream' }), 1)
  t.equal(moved('runs_total', { outcome: 'client_error', mode: 'sync' }), 1, 'an unknown flow')
  t.equal(moved('runs_total', { outcome: 'error' }), 0)
  t.equal(moved('runs_total', {}), 4, 'a request refused by the internal check is not a run')
  t.equal(moved('run_duration_seconds_count', { outcome: 'ok', mode: 'sync' }), 2)
  t.equal(moved('run_duration_seconds_count', { outcome: 'ok', mode: 'stream' }), 1)
  const route = { method: 'POST', route: RUN_ROUTE }
  t.equal(moved('http_request_duration_seconds_count', { ...route, status_code: '200' }), 3)
  t.equal(moved('http_request_duration_seconds_count', { ...route, status_code: '404' }), 1)
  t.equal(moved('http_request_duration_seconds_count', { ...route, status_code: '401' }), 1)
  t.notMatch(after, new RegExp(id), 'no flow ID in any label')
})

t.test('a run that fails (message-store down) is an error, in both modes', async (t) => {
  const orphan = await buildTestApp(t)
  const id = await importSimple(orphan)
  const before = await scrape(orphan)
  t.equal((await runFlow(orphan, id)).statusCode, 503)
  const streamed = await runFlow(orphan, id, true)
  t.equal(streamed.statusCode, 200)
  t.match(streamed.body, /"event":\s*"error"/)
  const after = await scrape(orphan)
  const moved = (labels: Record<string, string>) =>
    sample(after, 'runs_total', labels) - sample(before, 'runs_total', labels)
  t.equal(moved({ outcome: 'error', mode: 'sync' }), 1)
  t.equal(moved({ outcome: 'error', mode: 'stream' }), 1)
  t.equal(moved({ outcome: 'ok' }), 0)
  t.equal(sample(after, 'runs_total', { outcome: 'ok' }), 0, 'the other app counted its own runs only')
})
