// A streamed run whose connection to the run-service breaks (or whose body ends) before its last event was
// `end` or `error` gets one `error` event from the gateway, so the stream never just stops (spec §3). A plain
// node:http server stands in for the run-service, so each test decides exactly where the stream stops.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'
import { brokenStreamMessage } from '../src/domain/event-stream-guard.js'

const KEY = 'key-a-0123456789'
const STEP_MS = 10_000

interface LogLine {
  level: number
  msg: string
  reqId?: string
  [key: string]: unknown
}

const event = (name: string, data: unknown) => `${JSON.stringify({ event: name, data })}\n\n`
const ADD_MESSAGE = event('add_message', { id: 'm1', text: 'secret question', sender: 'User' })
const TOKEN_1 = event('token', { chunk: 'Once upon ', id: 'm2' })
const TOKEN_2 = event('token', { chunk: 'a tïme 🙂', id: 'm2' })
const END = event('end', { result: { outputs: [] } })

/** What each fake run does, by the last path segment of `/api/v1/run/<scenario>`. */
type Scenario = (res: ServerResponse, req: IncomingMessage) => Promise<void> | void
const scenarios = new Map<string, Scenario>()
/** Resolved by a test to let a scenario go on. */
let proceed: () => void = () => {}
const waitForTest = () =>
  new Promise<void>((resolve) => {
    proceed = resolve
  })
/** Requests whose connection the upstream saw close before its answer was complete. */
const cancelled: string[] = []

const upstream = createServer(async (req, res) => {
  for await (const _ of req) {
    // the body is read before answering
  }
  const name = new URL(req.url ?? '/', 'http://x').pathname.split('/').at(-1) ?? ''
  res.once('close', () => {
    if (!res.writableFinished) cancelled.push(name)
  })
  const scenario = scenarios.get(name)
  if (!scenario) {
    res.writeHead(404).end()
    return
  }
  await scenario(res, req)
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
t.teardown(() => {
  upstream.closeAllConnections()
  upstream.close()
})
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

const logs: LogLine[] = []
const gateway = await buildApp(
  loadConfig({
    LOG_LEVEL: 'info',
    INTERNAL_TOKEN: 'test-internal-token-0123456789',
    API_KEYS: `a=${KEY}`,
    RUN_SERVICE_URL: upstreamUrl,
    MESSAGE_STORE_URL: 'http://127.0.0.1:1',
  } as NodeJS.ProcessEnv),
  { keys: parseApiKeys(`a=${KEY}`), logStream: { write: (line) => logs.push(JSON.parse(line) as LogLine) } },
)
t.teardown(() => gateway.close())
await gateway.listen({ host: '127.0.0.1', port: 0 })
const gatewayUrl = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`

const streamEvents = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' })
const brokeOff = (line: LogLine) => line.level === 40 && /broke off/.test(line.msg)

/** Runs a scenario through the gateway; `onFirstChunk` is called once with the first chunk the client got. */
async function run(scenario: string, onFirstChunk?: (text: string) => void) {
  const res = await fetch(`${gatewayUrl}/api/v1/run/${scenario}?stream=true`, {
    method: 'POST',
    headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ input_value: 'secret question' }),
    signal: AbortSignal.timeout(STEP_MS),
  })
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  let ended = 'done'
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const first = text === ''
      text += decoder.decode(value, { stream: true })
      if (first) onFirstChunk?.(text)
    }
  } catch (error) {
    ended = `error: ${(error as Error).message}`
  }
  return { status: res.status, headers: res.headers, text, ended, requestId: res.headers.get('x-request-id') ?? '' }
}

const linesOf = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { event: string; data: Record<string, unknown> })

t.test('two events, then the run-service connection is destroyed: those two, then an error event', async (t) => {
  scenarios.set('cut', async (res) => {
    streamEvents(res)
    res.write(ADD_MESSAGE)
    await waitForTest() // the client has the first event before the second is written: nothing is held back
    res.write(TOKEN_1)
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const before = logs.length
  let firstChunk = ''
  const answer = await run('cut', (text) => {
    firstChunk = text
    proceed()
  })
  t.equal(answer.status, 200)
  t.equal(firstChunk, ADD_MESSAGE, 'the first event reached the client on its own, as it was written')
  t.equal(answer.ended, 'done', 'the response ended normally, not cut')
  const message = brokenStreamMessage('run-service', answer.requestId)
  t.match(message, /run-service stopped answering during the run/)
  t.match(message, /outcome is unknown/)
  t.ok(answer.requestId && message.includes(answer.requestId), 'the message names the request id')
  t.equal(answer.text, `${ADD_MESSAGE}${TOKEN_1}${JSON.stringify({ event: 'error', data: { error: message } })}\n\n`)
  t.same(
    linesOf(answer.text).map((e) => e.event),
    ['add_message', 'token', 'error'],
  )

  const warned = logs.slice(before).filter(brokeOff)
  t.equal(warned.length, 1, 'one warn line')
  t.equal(warned[0]?.reqId, answer.requestId, 'with the request id')
  t.match(warned[0], { upstream: 'run-service', cause: /connection broke off/ })
  const logged = JSON.stringify(logs.slice(before))
  t.notMatch(logged, /secret question|Once upon/, 'no message text in the log')
  t.same(
    logs.slice(before).filter((line) => line.level >= 50),
    [],
    'nothing at error level',
  )
})

t.test('tokens, then the body ends without end or error: an error event is appended', async (t) => {
  scenarios.set('short', (res) => {
    streamEvents(res)
    res.write(TOKEN_1)
    res.end(TOKEN_2)
  })
  const before = logs.length
  const answer = await run('short')
  t.equal(answer.ended, 'done')
  const events = linesOf(answer.text)
  t.same(
    events.map((e) => e.event),
    ['token', 'token', 'error'],
  )
  t.equal(events[1]?.data.chunk, 'a tïme 🙂', 'the tokens pass unchanged')
  t.equal(events[2]?.data.error, brokenStreamMessage('run-service', answer.requestId))
  t.match(logs.slice(before).filter(brokeOff), [{ reqId: answer.requestId, cause: /ended without/ }])
})

t.test('a line cut in the middle: the error event still starts on a line of its own', async (t) => {
  scenarios.set('mid-line', (res) => {
    streamEvents(res)
    res.write(TOKEN_1)
    res.write(TOKEN_2.slice(0, 20))
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const answer = await run('mid-line')
  t.equal(answer.ended, 'done')
  const lines = answer.text.split('\n')
  t.same(JSON.parse(lines.at(-3) ?? ''), {
    event: 'error',
    data: { error: brokenStreamMessage('run-service', answer.requestId) },
  })
  t.ok(answer.text.startsWith(`${TOKEN_1}${TOKEN_2.slice(0, 20)}\n\n{"event":"error"`), answer.text)
})

t.test('a stream that ends with end: nothing appended', async (t) => {
  scenarios.set('complete', (res) => {
    streamEvents(res)
    res.write(ADD_MESSAGE)
    res.write(TOKEN_1)
    res.write(END.slice(0, 7)) // the end event in two chunks
    res.end(END.slice(7))
  })
  const before = logs.length
  const answer = await run('complete')
  t.equal(answer.ended, 'done')
  t.equal(answer.text, ADD_MESSAGE + TOKEN_1 + END, 'exactly what the run-service sent')
  t.same(logs.slice(before).filter(brokeOff), [], 'no warn line')
})

t.test('end, then the connection is destroyed: nothing appended', async (t) => {
  scenarios.set('end-then-cut', (res) => {
    streamEvents(res)
    res.write(TOKEN_1)
    res.write(event('error', { error: 'The model failed' }))
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const before = logs.length
  const answer = await run('end-then-cut')
  t.equal(answer.text, `${TOKEN_1}${event('error', { error: 'The model failed' })}`)
  t.equal(answer.ended, 'done')
  t.same(logs.slice(before).filter(brokeOff), [], 'no warn line')
})

t.test('answers that are not event streams are not changed', async (t) => {
  scenarios.set('json', (res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"outputs":[]}')
  })
  const ok = await run('json')
  t.equal(ok.text, '{"outputs":[]}')

  scenarios.set('json-cut', (res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"outputs":[')
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const cut = await run('json-cut')
  t.match(cut.ended, /^error/, 'a broken JSON answer is still cut, as before')
  t.notMatch(cut.text, /"event"/, 'nothing appended')
})

t.test('a client that goes away mid-stream still cancels the request to the run-service', async (t) => {
  scenarios.set('left', (res) => {
    streamEvents(res)
    res.write(TOKEN_1) // and then nothing: the model is slow
  })
  const before = logs.length
  const { port } = gateway.server.address() as AddressInfo
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v1/run/left?stream=true',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
    })
    req.on('response', (res) => {
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', reject) // a no-op once resolved: the destroy below
    req.end('{}')
  })
  const deadline = Date.now() + STEP_MS
  while (!cancelled.includes('left') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.ok(cancelled.includes('left'), 'the run-service saw its caller go away')
  await new Promise((r) => setTimeout(r, 100))
  t.same(logs.slice(before).filter(brokeOff), [], 'not taken for a broken stream')
})

t.test(
  "OpenAI's response events (/api/v1/responses): [DONE] ends them; a broken one gets OpenAI's error event",
  async (t) => {
    const sse = (type: string) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: 0 })}\n\n`
    const DONE = 'data: [DONE]\n\n'
    // the upstream reads the body before the scenario: what to do is told here
    let cutNext = false
    scenarios.set('responses', async (res) => {
      streamEvents(res)
      res.write(sse('response.created'))
      if (cutNext) return void setTimeout(() => res.socket?.destroy(), 50)
      res.end(`${sse('response.completed')}${DONE}`)
    })
    const respond = async (input: string) => {
      cutNext = input === 'cut'
      const res = await fetch(`${gatewayUrl}/api/v1/responses`, {
        method: 'POST',
        headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'flow', input, stream: true }),
        signal: AbortSignal.timeout(STEP_MS),
      })
      return { status: res.status, text: await res.text(), requestId: res.headers.get('x-request-id') ?? '' }
    }
    const whole = await respond('whole')
    t.equal(
      whole.text,
      `${sse('response.created')}${sse('response.completed')}${DONE}`,
      'nothing appended after [DONE]',
    )

    const cut = await respond('cut')
    t.equal(cut.status, 200)
    const message = brokenStreamMessage('run-service', cut.requestId)
    const error = { type: 'error', code: 'GATEWAY_STREAM_BROKEN', message, param: null }
    t.equal(cut.text, `${sse('response.created')}event: error\ndata: ${JSON.stringify(error)}\n\n${DONE}`)
  },
)
