import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { FLOW_ID_HEADER, SESSION_ID_HEADER } from '@session-runtime/schemas'
import Fastify from 'fastify'
import t from 'tap'
import { commonErrors, frameworkErrors, nameRequestSubject, RequestLog, takeRequestSubject } from '../src/index.js'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  [field: string]: unknown
}

const Errors = commonErrors('KIT')

async function build(level: 'info' | 'debug', loggerLevel = 'debug') {
  const lines: LogLine[] = []
  const app = Fastify({
    logger: { level: loggerLevel, stream: { write: (line: string) => lines.push(JSON.parse(line)) } },
    logController: new RequestLog({
      level,
      url: (request) => request.url.replace(/secret=[^&]*/, 'secret=x'),
      quietRoutes: ['/health'],
    }),
    frameworkErrors: frameworkErrors(Errors),
  })
  app.get('/health', async (request, reply) => reply.code((request.query as { down?: string }).down ? 503 : 200).send())
  app.get('/named/:session', async (request, reply) => {
    nameRequestSubject(request, reply, { flowId: 'flow-1', sessionId: (request.params as { session: string }).session })
    return { ok: true }
  })
  // what the gateway does with an answer whose service named its subject
  app.register(async (gateway) => {
    gateway.addHook('onSend', async (request, reply) => takeRequestSubject(request, reply))
    gateway.get('/proxied', async (_request, reply) => {
      reply.header(FLOW_ID_HEADER, 'flow-2').header(SESSION_ID_HEADER, encodeURIComponent('sëssion 🙂/2'))
      return { ok: true }
    })
  })
  app.get('/slow', (_request, reply) => {
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('first part')
    // never ended: the client goes away
  })
  t.teardown(() => app.close())
  return { app, lines, completed: () => lines.filter((line) => line.msg === 'request completed') }
}

t.test('one line per request, at the given level, with method, url, status and duration', async (t) => {
  const { app, lines, completed } = await build('info')
  const res = await app.inject({ url: '/named/s?secret=hunter2' })
  t.equal(res.statusCode, 200)
  t.match(completed(), [
    {
      level: 30,
      reqId: String,
      method: 'GET',
      url: '/named/s?secret=x',
      statusCode: 200,
      durationMs: Number,
      flowId: 'flow-1',
      sessionId: 's',
    },
  ])
  t.notOk('clientClosed' in (completed()[0] as LogLine))
  t.match(
    lines.find((line) => line.msg === 'incoming request'),
    { level: 20 },
    "Fastify's incoming line is debug",
  )
  t.equal(res.headers[FLOW_ID_HEADER], 'flow-1', 'a named subject is answered')
  t.equal(res.headers[SESSION_ID_HEADER], 's')
  t.notMatch(JSON.stringify(completed()), 'hunter2', 'the URL as the service logs it')
})

t.test('at the gateway the answered subject is logged, decoded, and not passed on', async (t) => {
  const { app, completed } = await build('info')
  const res = await app.inject({ url: '/proxied' })
  t.match(completed(), [{ level: 30, flowId: 'flow-2', sessionId: 'sëssion 🙂/2' }])
  t.equal(res.headers[FLOW_ID_HEADER], undefined)
  t.equal(res.headers[SESSION_ID_HEADER], undefined)
})

t.test('probes are debug while they answer below 400; a 404 and a malformed URL get their line too', async (t) => {
  const { app, completed } = await build('info')
  await app.inject({ url: '/health' })
  await app.inject({ url: '/health?down=1' })
  await app.inject({ url: '/nowhere' })
  await app.inject({ url: '/named/%E0%A4%A' })
  t.match(completed(), [
    { level: 20, url: '/health', statusCode: 200 },
    { level: 30, url: '/health?down=1', statusCode: 503 },
    { level: 30, url: '/nowhere', statusCode: 404 },
    { level: 30, url: '/named/%E0%A4%A', statusCode: 400 },
  ])
})

t.test('a service at debug behind a logger at info writes no request line', async (t) => {
  const { app, lines } = await build('debug', 'info')
  await app.inject({ url: '/named/s' })
  t.same(lines, [])
})

t.test('a client that goes away: clientClosed, with the status it was sent', async (t) => {
  const { app, completed } = await build('info')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  await new Promise<void>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/slow' }, (res) => {
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', () => {})
    req.end()
  })
  const deadline = Date.now() + 5000
  while (completed().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.match(completed(), [{ level: 30, url: '/slow', statusCode: 200, clientClosed: true }])
})
