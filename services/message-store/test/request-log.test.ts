// The message-store's logs: a request is a hop of the gateway's, so its one `request completed` line is `debug`
// (nothing at `info` for a request that went well), under the edge's request ID; a monitor call names the flow
// and the session it is about, in its lines and, for the gateway's line, in its answer (x-flow-id, x-session-id).
// Its 5xx are logged at error: postgres-outage.test.ts.
import { randomUUID } from 'node:crypto'
import { FLOW_ID_HEADER, REQUEST_ID_HEADER, SESSION_ID_HEADER } from '@session-runtime/schemas'
import { LOG_LEVELS, type LogLine, logInto } from '@session-runtime/stack'
import t from 'tap'
import { buildTestApp, internalHeaders, messageInput, store } from './helpers/app.js'

const { debug: DEBUG, info: INFO } = LOG_LEVELS

const lines: LogLine[] = []
const app = await buildTestApp(t, { server: { logger: { level: 'debug', stream: logInto(lines) } } })
const flow_id = randomUUID()
const session = 'sëssion 🙂/1'
await store(app, 'tenant-a', [messageInput({ flow_id, session_id: session })])

const call = (reqId: string, method: 'GET' | 'DELETE', url: string) =>
  app.inject({ method, url, headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId } })
const linesOf = (reqId: string) => lines.filter((line) => line.reqId === reqId)

t.test('a monitor read: one debug line naming the flow and the session, and an answer naming them', async (t) => {
  const res = await call(
    'ms-read',
    'GET',
    `/api/v1/monitor/messages?flow_id=${flow_id}&session_id=${encodeURIComponent(session)}`,
  )
  t.equal(res.statusCode, 200)
  t.equal((res.json() as unknown[]).length, 1)
  t.match(linesOf('ms-read'), [
    { level: DEBUG, msg: 'incoming request' },
    {
      level: DEBUG,
      msg: 'request completed',
      method: 'GET',
      statusCode: 200,
      tenant: 'tenant-a',
      flowId: flow_id,
      sessionId: session,
      durationMs: Number,
    },
  ])
  t.same(
    linesOf('ms-read').filter((line) => line.level >= INFO),
    [],
    'nothing at info',
  )
  t.equal(res.headers[FLOW_ID_HEADER], flow_id)
  t.equal(decodeURIComponent(String(res.headers[SESSION_ID_HEADER])), session)
})

t.test('a session in the path is named too', async (t) => {
  const res = await call('ms-delete', 'DELETE', `/api/v1/monitor/messages/session/${encodeURIComponent(session)}`)
  t.equal(res.statusCode, 204)
  t.match(
    linesOf('ms-delete').find((line) => line.msg === 'request completed'),
    { statusCode: 204, sessionId: session },
  )
  t.equal(res.headers[FLOW_ID_HEADER], undefined, 'no flow named, none answered')
})

t.test('a call that names neither answers neither', async (t) => {
  const res = await call('ms-sessions', 'GET', '/api/v1/monitor/sessions')
  t.equal(res.statusCode, 200)
  const line = linesOf('ms-sessions').find((l) => l.msg === 'request completed')
  t.match(line, { statusCode: 200 })
  t.notOk(line && ('flowId' in line || 'sessionId' in line))
  t.equal(res.headers[SESSION_ID_HEADER], undefined)
})
