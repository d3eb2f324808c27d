// The logs at the default level (`info`): one `request completed` line per client request, written by the
// gateway, naming the request ID, tenant, flow, session, status and duration; nothing from the services behind
// it for a request that went well; every 5xx logged at `error` where it was answered. The whole stack runs in
// this process, each service logging into its own buffer.
import { readFileSync } from 'node:fs'
import { LOG_LEVELS, type LogLine, logInto, startFakeModel } from '@session-runtime/stack'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'
import { INTERNAL_TOKEN, KEY_A, startStack } from './helpers/stack.js'

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixtures}/${name}.json`, 'utf8'))

const { debug: DEBUG, info: INFO, error: ERROR } = LOG_LEVELS

const model = await startFakeModel(t)
const logs = { gateway: [] as LogLine[], runService: [] as LogLine[], messageStore: [] as LogLine[] }
const { gateway, runService, store } = await startStack(t, {
  modelUrl: model.url,
  env: { LOG_LEVEL: 'info' },
  gateway: { logStream: logInto(logs.gateway) },
  serviceLogs: { level: 'info', runService: logInto(logs.runService), messageStore: logInto(logs.messageStore) },
})

const asA = (opts: InjectOptions) => gateway.inject({ ...opts, headers: { 'x-api-key': KEY_A, ...opts.headers } })

async function importFlow(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await asA({ method: 'POST', url: '/api/v1/flows/', payload: { ...fixture(name), ...extra } })
  if (res.statusCode !== 201) throw new Error(`import ${name}: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

const simple = await importFlow('langflow-simple-api-test', { endpoint_name: 'log-line-endpoint' })
const prompting = await importFlow('langflow-basic-prompting')

/** Every line of one request (by its ID, which the gateway answers in x-request-id) in one service's log. */
function linesOf(lines: LogLine[], res: LightMyRequestResponse): LogLine[] {
  const reqId = res.headers['x-request-id']
  if (typeof reqId !== 'string') throw new Error('no x-request-id')
  return lines.filter((line) => line.reqId === reqId)
}

/** The gateway's info lines of a request: exactly one, which is returned. */
function theLine(t: Test, res: LightMyRequestResponse, lines = logs.gateway): LogLine {
  const info = linesOf(lines, res).filter((line) => line.level === INFO)
  t.equal(info.length, 1, `one info line at the gateway: ${JSON.stringify(info)}`)
  return info[0] as LogLine
}

/** What a request that went well leaves in the services' logs at info: nothing. */
function quietBehind(t: Test, res: LightMyRequestResponse) {
  t.same(linesOf(logs.runService, res), [], 'no line from the run-service')
  t.same(linesOf(logs.messageStore, res), [], 'no line from the message-store')
}

t.test('a run by flow ID: the line names the tenant, the flow, the session, the status and the duration', async (t) => {
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${simple}`,
    payload: { input_value: 'hello', session_id: 'log-session-1' },
  })
  t.equal(res.statusCode, 200)
  const line = theLine(t, res)
  t.match(line, {
    msg: 'request completed',
    reqId: res.headers['x-request-id'],
    method: 'POST',
    url: `/api/v1/run/${simple}`,
    statusCode: 200,
    tenant: 'tenant-a',
    flowId: simple,
    sessionId: 'log-session-1',
  })
  t.type(line.durationMs, 'number')
  t.ok((line.durationMs as number) > 0, 'a duration in ms')
  t.notOk(line.clientClosed, 'the client got the whole answer')
  t.equal(res.headers['x-flow-id'], undefined, 'the flow header stays between the services')
  t.equal(res.headers['x-session-id'], undefined, 'the session header stays between the services')
  quietBehind(t, res)
})

t.test('a run by endpoint name names the resolved flow ID and the resolved session', async (t) => {
  const res = await asA({ method: 'POST', url: '/api/v1/run/log-line-endpoint', payload: { input_value: 'hi' } })
  t.equal(res.statusCode, 200)
  const session = (res.json() as { session_id: string }).session_id
  t.ok(session, 'the run resolved a session')
  t.match(theLine(t, res), {
    url: '/api/v1/run/log-line-endpoint',
    statusCode: 200,
    tenant: 'tenant-a',
    flowId: simple,
    sessionId: session,
  })
  quietBehind(t, res)
})

t.test('a streamed run names the flow and the session it started with', async (t) => {
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${prompting}?stream=true`,
    payload: { input_value: 'tell me', session_id: 'log-stream-1' },
  })
  t.equal(res.statusCode, 200)
  t.match(res.body, /"event":"end"/)
  t.match(theLine(t, res), {
    url: `/api/v1/run/${prompting}?stream=true`,
    statusCode: 200,
    tenant: 'tenant-a',
    flowId: prompting,
    sessionId: 'log-stream-1',
  })
  quietBehind(t, res)
})

t.test('monitor calls name the flow and the session they name', async (t) => {
  const read = await asA({ url: `/api/v1/monitor/messages?flow_id=${simple}&session_id=log-session-1` })
  t.equal(read.statusCode, 200)
  t.ok((read.json() as unknown[]).length > 0, 'the run stored its messages')
  t.match(theLine(t, read), {
    method: 'GET',
    url: `/api/v1/monitor/messages?flow_id=${simple}&session_id=log-session-1`,
    statusCode: 200,
    tenant: 'tenant-a',
    flowId: simple,
    sessionId: 'log-session-1',
  })
  quietBehind(t, read)

  // a session ID in the path, of any characters: the line has it decoded
  const session = 'log sëssion/🙂'
  const deleted = await asA({
    method: 'DELETE',
    url: `/api/v1/monitor/messages/session/${encodeURIComponent(session)}`,
  })
  t.equal(deleted.statusCode, 204)
  t.match(theLine(t, deleted), { method: 'DELETE', statusCode: 204, sessionId: session })
  quietBehind(t, deleted)

  const sessions = await asA({ url: '/api/v1/monitor/sessions' })
  const line = theLine(t, sessions)
  t.match(line, { statusCode: 200, tenant: 'tenant-a' })
  t.notOk('flowId' in line || 'sessionId' in line, 'nothing named, nothing logged')
})

t.test('a 4xx is one info line too; a key in the query never reaches it', async (t) => {
  const refused = await asA({ method: 'POST', url: `/api/v1/run/${simple}`, payload: { session_id: 42 } })
  t.equal(refused.statusCode, 422)
  t.match(theLine(t, refused), { statusCode: 422, tenant: 'tenant-a', url: `/api/v1/run/${simple}` })

  const wrongKey = await gateway.inject({ url: '/api/v1/monitor/sessions?x-api-key=not-a-key-0123456789&limit=5' })
  t.equal(wrongKey.statusCode, 403)
  const line = theLine(t, wrongKey)
  t.match(line, { statusCode: 403, url: '/api/v1/monitor/sessions?limit=5' })
  t.notOk('tenant' in line, 'no tenant for an unknown key')
  t.notMatch(JSON.stringify(logs.gateway), 'not-a-key-0123456789')

  for (const res of [refused, wrongKey]) {
    t.same(
      linesOf(logs.gateway, res).filter((l) => l.level >= ERROR),
      [],
      'no error line',
    )
    quietBehind(t, res)
  }
})

t.test('a 5xx answered by the run-service: its error line, then the gateway line', async (t) => {
  model.mode = 'fail'
  t.teardown(() => {
    model.mode = 'ok'
  })
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${prompting}`,
    payload: { input_value: 'fail please', session_id: 'log-fail-1' },
  })
  t.equal(res.statusCode, 502)
  t.match(theLine(t, res), { statusCode: 502, tenant: 'tenant-a', flowId: prompting, sessionId: 'log-fail-1' })
  const errors = linesOf(logs.runService, res).filter((line) => line.level === ERROR)
  t.equal(errors.length, 1, 'the run-service logged the failure at error')
  t.match(errors[0], { msg: 'run failed', flowId: prompting, sessionId: 'log-fail-1', code: String })
  t.same(
    linesOf(logs.runService, res).filter((line) => line.level < ERROR),
    [],
    'and nothing else at info',
  )
})

t.test("a 5xx of the gateway's own (the run-service unreachable) is logged at error", async (t) => {
  const lines: LogLine[] = []
  const alone = await buildApp(
    loadConfig({
      LOG_LEVEL: 'info',
      INTERNAL_TOKEN,
      RUN_SERVICE_URL: 'http://127.0.0.1:1',
      MESSAGE_STORE_URL: 'http://127.0.0.1:1',
    } as NodeJS.ProcessEnv),
    { keys: parseApiKeys(`tenant-a=${KEY_A}`), logStream: logInto(lines) },
  )
  t.teardown(() => alone.close())
  const res = await alone.inject({
    method: 'POST',
    url: '/api/v1/run/some-flow',
    headers: { 'x-api-key': KEY_A },
    payload: { input_value: 'hi' },
  })
  t.equal(res.statusCode, 503)
  t.match(theLine(t, res, lines), { statusCode: 503, tenant: 'tenant-a', url: '/api/v1/run/some-flow' })
  const errors = linesOf(lines, res).filter((line) => line.level === ERROR)
  t.equal(errors.length, 1)
  t.match(errors[0], { msg: 'request failed', err: { code: 'GATEWAY_UPSTREAM_UNAVAILABLE' } })
})

t.test('probes are logged at debug while they answer well', async (t) => {
  for (const url of ['/health', '/ready', '/metrics']) {
    const res = await gateway.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.same(linesOf(logs.gateway, res), [], `${url}: no line at info`)
  }
})

t.test("at debug, the services' lines of a request carry the gateway's request ID", async (t) => {
  for (const app of [runService, store]) app.log.level = 'debug'
  t.teardown(() => {
    for (const app of [runService, store]) app.log.level = 'info'
  })
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${simple}`,
    payload: { input_value: 'hi', session_id: 'dbg' },
  })
  t.equal(res.statusCode, 200)
  for (const [service, lines] of Object.entries({ runService: logs.runService, messageStore: logs.messageStore })) {
    const mine = linesOf(lines, res)
    t.ok(
      mine.some((line) => line.msg === 'request completed' && line.level === DEBUG),
      `${service}: its request completed line, at debug, under the gateway's reqId`,
    )
    t.same(
      mine.filter((line) => line.level >= INFO),
      [],
      `${service}: still nothing at info`,
    )
  }
  t.match(
    linesOf(logs.runService, res).find((line) => line.msg === 'request completed'),
    { flowId: simple, sessionId: 'dbg', statusCode: 200 },
  )
})
