import { readFileSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { API_KEYS, KEY_A, KEY_B, startGatedModel, startStack } from './helpers/stack.js'

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixtures}/${name}.json`, 'utf8'))

const logs: string[] = []
const model = await startGatedModel(t)
const { gateway, seen } = await startStack(t, {
  modelUrl: model.url,
  env: { LOG_LEVEL: 'info' },
  gateway: { logStream: { write: (line: string) => logs.push(line) } },
})

const asA = (opts: InjectOptions) => gateway.inject({ ...opts, headers: { 'x-api-key': KEY_A, ...opts.headers } })
const asB = (opts: InjectOptions) => gateway.inject({ ...opts, headers: { 'x-api-key': KEY_B, ...opts.headers } })

async function importFlow(as: typeof asA, name: string): Promise<string> {
  const res = await as({ method: 'POST', url: '/api/v1/flows/', payload: fixture(name) })
  if (res.statusCode !== 201) throw new Error(`import ${name}: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

const simpleId = await importFlow(asA, 'langflow-simple-api-test')

t.test('health and ready need no key; ready reports each downstream', async (t) => {
  const health = await gateway.inject({ url: '/health' })
  t.equal(health.statusCode, 200)
  const ready = await gateway.inject({ url: '/ready' })
  t.equal(ready.statusCode, 200)
  const body = ready.json() as { status: string; services: Record<string, { status: string }> }
  t.equal(body.status, 'ok')
  t.equal(body.services['run-service']?.status, 'up')
  t.equal(body.services['message-store']?.status, 'up')
})

t.test('no key: 401, unknown key: 403, in Langflow words plus a code', async (t) => {
  const missing = await gateway.inject({ url: '/api/v1/flows/' })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), {
    detail: 'An API key must be passed as query or header',
    code: 'GATEWAY_MISSING_API_KEY',
  })
  const wrong = await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': 'nope' } })
  t.equal(wrong.statusCode, 403)
  t.same(wrong.json(), { detail: 'Invalid or missing API key', code: 'GATEWAY_INVALID_API_KEY' })
  const wrongQuery = await gateway.inject({ url: '/api/v1/monitor/messages?x-api-key=nope' })
  t.equal(wrongQuery.statusCode, 403)
  const run = await gateway.inject({ method: 'POST', url: `/api/v1/run/${simpleId}`, payload: {} })
  t.equal(run.statusCode, 401, 'runs need a key too')
})

t.test('the key as header or as query parameter; neither reaches the services', async (t) => {
  const byHeader = await asA({ url: '/api/v1/flows/' })
  t.equal(byHeader.statusCode, 200, 'by header')
  t.ok((byHeader.json() as { id: string }[]).some((flow) => flow.id === simpleId))
  const before = seen.length
  const byQuery = await gateway.inject({ url: `/api/v1/flows/${simpleId}?keep=1&x-api-key=${KEY_A}` })
  t.equal(byQuery.statusCode, 200, 'by query')
  const received = seen.slice(before)
  t.equal(received.length, 1)
  t.equal(received[0]?.url, `/api/v1/flows/${simpleId}?keep=1`, 'the query key is removed, the rest kept')
  t.equal(received[0]?.['x-api-key'], undefined)
  t.equal(received[0]?.['x-tenant-id'], 'tenant-a')
})

t.test('a fixture flow runs in two sessions, through the gateway', async (t) => {
  for (const session of ['s-1', 's-2']) {
    const res = await asA({
      method: 'POST',
      url: `/api/v1/run/${simpleId}`,
      payload: { input_value: `hi from ${session}`, session_id: session },
    })
    t.equal(res.statusCode, 200, `run in ${session}`)
    t.equal((res.json() as { session_id: string }).session_id, session)
  }
  const sessions = await asA({ url: `/api/v1/monitor/messages/sessions?flow_id=${simpleId}` })
  t.equal(sessions.statusCode, 200)
  t.same([...(sessions.json() as string[])].sort(), ['s-1', 's-2'])
  const messages = await asA({ url: `/api/v1/monitor/messages?flow_id=${simpleId}&session_id=s-2` })
  t.ok((messages.json() as { text: string }[]).some((m) => m.text === 'hi from s-2'))
})

t.test('tenants are isolated', async (t) => {
  const flow = await asB({ url: `/api/v1/flows/${simpleId}` })
  t.equal(flow.statusCode, 404)
  const run = await asB({ method: 'POST', url: `/api/v1/run/${simpleId}`, payload: { input_value: 'x' } })
  t.equal(run.statusCode, 404)
  t.equal((run.json() as { detail: string }).detail, `Flow identifier ${simpleId} not found`)
  const list = await asB({ url: '/api/v1/flows/' })
  t.equal(list.statusCode, 200)
  // B's list holds B's own copy of the built-in example flows, never A's flows.
  t.notOk(
    (list.json() as { id: string }[]).some((f) => f.id === simpleId),
    "A's flow is not in B's list",
  )
  const messages = await asB({ url: '/api/v1/monitor/messages' })
  t.equal(messages.statusCode, 200)
  t.same(messages.json(), [], "none of A's messages")
  const sessions = await asB({ url: '/api/v1/monitor/messages/sessions' })
  t.same(sessions.json(), [])
})

t.test("a caller's x-tenant-id and x-internal-token are ignored", async (t) => {
  const spoofed = { 'x-tenant-id': 'tenant-a', 'x-internal-token': 'forged-token-0123456789' }
  const flow = await asB({ url: `/api/v1/flows/${simpleId}`, headers: spoofed })
  t.equal(flow.statusCode, 404, 'still tenant B')
  const messages = await asB({ url: '/api/v1/monitor/messages', headers: spoofed })
  t.same(messages.json(), [])
  const withoutKey = await gateway.inject({ url: '/api/v1/flows/', headers: spoofed })
  t.equal(withoutKey.statusCode, 401, 'trusted headers are no substitute for a key')
})

t.test('/internal/* is never routed', async (t) => {
  for (const url of ['/internal/messages', '/internal/history', '/internal/anything/at/all']) {
    const res = await asA({ method: 'POST', url, payload: {} })
    t.equal(res.statusCode, 404, url)
    t.equal((res.json() as { code: string }).code, 'GATEWAY_ROUTE_NOT_FOUND')
  }
})

t.test('the request ID is made at the edge, sent downstream and returned', async (t) => {
  const before = seen.length
  const res = await asA({ url: '/api/v1/flows/', headers: { 'x-request-id': 'chosen-by-client' } })
  const id = res.headers['x-request-id']
  t.type(id, 'string')
  t.not(id, 'chosen-by-client')
  t.match(id, /^[0-9a-f-]{36}$/)
  t.equal(seen[before]?.['x-request-id'], id)
  const denied = await gateway.inject({ url: '/api/v1/flows/' })
  t.type(denied.headers['x-request-id'], 'string', 'errors carry it too')
})

t.test('an over-long body is refused at the gateway', async (t) => {
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${simpleId}`,
    headers: { 'content-type': 'application/json', 'content-length': String(9 * 1024 * 1024) },
    payload: '{}',
  })
  t.equal(res.statusCode, 413)
  t.equal((res.json() as { code: string }).code, 'GATEWAY_PAYLOAD_TOO_LARGE')
})

t.test('a streamed run passes through unbuffered', async (t) => {
  const basicId = await importFlow(asA, 'langflow-basic-prompting')
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const { port } = gateway.server.address() as AddressInfo
  const request = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: `/api/v1/run/${basicId}?stream=true`,
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
  })
  request.end(JSON.stringify({ input_value: 'stream me', session_id: 'st-1' }))
  const response = await new Promise<IncomingMessage>((resolve) => request.on('response', resolve))
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/event-stream/)
  response.setEncoding('utf8')
  let body = ''
  const ended = new Promise<void>((resolve) => response.on('end', resolve))
  // The model is still held back: the user's message must already have arrived.
  await new Promise<void>((resolve) => {
    response.on('data', (chunk: string) => {
      body += chunk
      if (body.includes('"event": "add_message"') || body.includes('"event":"add_message"')) resolve()
    })
  })
  t.notMatch(body, /"event": ?"end"/, 'add_message arrived before end, while the model was still waiting')
  model.release()
  await ended
  const events = body
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => (JSON.parse(line) as { event: string }).event)
  t.equal(events[0], 'add_message')
  t.equal(events.at(-1), 'end', 'end is last')
})

t.test('API keys never reach the logs', async (t) => {
  await gateway.inject({ url: `/api/v1/flows/?x-api-key=${KEY_B}` })
  const all = logs.join('')
  t.ok(all.length > 0, 'something was logged')
  t.notOk(all.includes(KEY_A), 'key A not logged')
  t.notOk(all.includes(KEY_B), 'key B not logged')
  t.notOk(API_KEYS.length === 0)
})
