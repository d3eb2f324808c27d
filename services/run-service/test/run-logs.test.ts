import { REQUEST_ID_HEADER } from '@session-runtime/schemas'
import t from 'tap'
import { buildTestApp, internalHeaders, startMessageStore } from './helpers/app.js'
import { fixture } from './helpers/flows.js'

interface LogLine {
  msg: string
  reqId?: string
  flowId?: string
  sessionId?: string
  durationMs?: number
}

const lines: LogLine[] = []
const store = await startMessageStore(t)
const app = await buildTestApp(t, {
  messageStoreUrl: store.url,
  server: { logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } },
})

const imported = await app.inject({
  method: 'POST',
  url: '/api/v1/flows/',
  headers: internalHeaders(),
  payload: fixture('simple'),
})
const flowId = (imported.json() as { id: string }).id

const linesOf = (reqId: string) => lines.filter((line) => line.reqId === reqId)

t.test("a run's log lines carry the edge's request ID, the flow ID and the session ID", async (t) => {
  const reqId = 'edge-request-1'
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${flowId}`,
    headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId },
    payload: { input_value: 'hi', session_id: 'alice' },
  })
  t.equal(res.statusCode, 200)
  const mine = linesOf(reqId)
  const completed = mine.find((line) => line.msg === 'run completed')
  t.match(completed, { flowId, sessionId: 'alice' })
  t.type(completed?.durationMs, 'number')
  // Fastify's own "request completed" line is bound too
  t.match(
    mine.find((line) => line.msg === 'request completed'),
    { flowId, sessionId: 'alice' },
  )
})

t.test('without a session_id the resolved one (the flow ID here) is bound once known', async (t) => {
  const reqId = 'edge-request-2'
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${flowId}`,
    headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId },
    payload: { input_value: 'hi' },
  })
  t.equal((res.json() as { session_id: string }).session_id, flowId)
  t.match(
    linesOf(reqId).find((line) => line.msg === 'run completed'),
    { flowId, sessionId: flowId },
  )
})

t.test('a streamed run is bound the same way', async (t) => {
  const reqId = 'edge-request-3'
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${flowId}?stream=true`,
    headers: { ...internalHeaders(), [REQUEST_ID_HEADER]: reqId },
    payload: { input_value: 'hi', session_id: 'bob' },
  })
  t.match(res.body, /"event":"end"/)
  t.match(
    linesOf(reqId).find((line) => line.msg === 'run completed'),
    { flowId, sessionId: 'bob' },
  )
})
