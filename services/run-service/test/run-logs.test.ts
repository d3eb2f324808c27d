// The run-service's logs: a request is a hop of the gateway's, so its lines are `debug` (the gateway's one line
// per request is the one kept at `info`); each carries the edge's request ID, and a run's the flow and session,
// which the answer names too (x-flow-id, x-session-id) for the gateway's line. A 5xx is logged at `error`.
import { FLOW_ID_HEADER, REQUEST_ID_HEADER, SESSION_ID_HEADER } from '@session-runtime/schemas'
import { LOG_LEVELS, type LogLine, logInto, startFakeModel } from '@session-runtime/stack'
import t from 'tap'
import { buildTestApp, internalHeaders, startMessageStore } from './helpers/app.js'
import { fixture } from './helpers/flows.js'

const { debug: DEBUG, info: INFO, error: ERROR } = LOG_LEVELS

const lines: LogLine[] = []
const store = await startMessageStore(t)
const model = await startFakeModel(t)
const app = await buildTestApp(t, {
  messageStoreUrl: store.url,
  env: { OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'sk-test', OPENAI_DEFAULT_MODEL: 'fake-model' },
  server: { logger: { level: 'debug', stream: logInto(lines) } },
})

async function importFlow(name: 'simple' | 'basic', extra: Record<string, unknown> = {}): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(),
    payload: { ...fixture(name), ...extra },
  })
  if (res.statusCode !== 201) throw new Error(`import ${name}: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}
const flowId = await importFlow('simple', { endpoint_name: 'run-logs-endpoint' })
const prompting = await importFlow('basic')

const linesOf = (reqId: string) => lines.filter((line) => line.reqId === reqId)
const run = (reqId: string, url: string, payload: Record<string, unknown>) =>
  app.inject({ method: 'POST', url, headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId }, payload })

t.test("a run's log lines carry the edge's request ID, the flow ID and the session ID, all at debug", async (t) => {
  const reqId = 'edge-request-1'
  const res = await run(reqId, `/api/v1/run/${flowId}`, { input_value: 'hi', session_id: 'alice' })
  t.equal(res.statusCode, 200)
  const mine = linesOf(reqId)
  const completed = mine.find((line) => line.msg === 'run completed')
  t.match(completed, { level: DEBUG, flowId, sessionId: 'alice' })
  t.type(completed?.durationMs, 'number')
  // the one line per request is bound too
  t.match(
    mine.find((line) => line.msg === 'request completed'),
    { level: DEBUG, flowId, sessionId: 'alice', statusCode: 200, tenant: 'tenant-a', method: 'POST' },
  )
  t.same(
    mine.filter((line) => line.level >= INFO),
    [],
    'nothing at info or above',
  )
  t.equal(res.headers[FLOW_ID_HEADER], flowId, 'the answer names the flow, for the gateway')
  t.equal(res.headers[SESSION_ID_HEADER], 'alice', 'and the session')
})

t.test('by endpoint name, without a session_id: the resolved flow and session, once known', async (t) => {
  const reqId = 'edge-request-2'
  const res = await run(reqId, '/api/v1/run/run-logs-endpoint', { input_value: 'hi' })
  t.equal((res.json() as { session_id: string }).session_id, flowId)
  t.match(
    linesOf(reqId).find((line) => line.msg === 'run completed'),
    { flowId, sessionId: flowId },
  )
  t.equal(res.headers[FLOW_ID_HEADER], flowId, 'the flow ID, not the endpoint name')
  t.equal(res.headers[SESSION_ID_HEADER], flowId)
})

t.test('a streamed run is bound the same way; its answer names the session the request gave', async (t) => {
  const reqId = 'edge-request-3'
  const session = 'bob 🙂/ü'
  const res = await run(reqId, `/api/v1/run/${flowId}?stream=true`, { input_value: 'hi', session_id: session })
  t.match(res.body, /"event":"end"/)
  t.match(
    linesOf(reqId).find((line) => line.msg === 'run completed'),
    { flowId, sessionId: session },
  )
  t.equal(res.headers[FLOW_ID_HEADER], flowId)
  t.equal(res.headers[SESSION_ID_HEADER], encodeURIComponent(session), 'percent-encoded: any session ID fits')
})

t.test('a run that fails with a 5xx is logged at error, with its flow and session', async (t) => {
  model.mode = 'fail'
  t.teardown(() => {
    model.mode = 'ok'
  })
  const reqId = 'edge-request-4'
  const res = await run(reqId, `/api/v1/run/${prompting}`, { input_value: 'hi', session_id: 'carol' })
  t.equal(res.statusCode, 502)
  const errors = linesOf(reqId).filter((line) => line.level === ERROR)
  t.match(errors, [{ msg: 'run failed', flowId: prompting, sessionId: 'carol' }])
  t.match(
    linesOf(reqId).find((line) => line.msg === 'request completed'),
    { level: DEBUG, statusCode: 502 },
  )
})

t.test('any other 5xx is logged at error by the error envelope', async (t) => {
  // the message-store gone: deleting a flow needs it (its messages go first), so the delete answers 503
  await store.close()
  const reqId = 'edge-request-5'
  const res = await app.inject({
    method: 'DELETE',
    url: `/api/v1/flows/${prompting}`,
    headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId },
  })
  t.ok(res.statusCode >= 500, `a 5xx: ${res.statusCode}`)
  t.match(
    linesOf(reqId).filter((line) => line.level === ERROR),
    [{ msg: 'request failed', flowId: prompting }],
  )
})
