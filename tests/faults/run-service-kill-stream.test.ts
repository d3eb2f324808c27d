// Fault: the run-service is killed (SIGKILL) in the middle of a streamed run, while the model is half-way
// through its reply. The client's stream (through the gateway) must end with an `error` event added by the
// gateway (the stream never just stops, spec §3), never with an `end` event, and end normally, not cut; the
// partial reply must never be stored as a complete message; and once the run-service is back, the session goes
// on without the partial reply in its history.

import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { sessionMessages } from '../helpers/load.js'
import { KEY_A, root, startProcessStack } from '../helpers/processes.js'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
/** Bound of every wait of this file (milliseconds). */
const STEP_MS = 30_000

/** A fake OpenAI-compatible model: streams its first word, then holds the stream while `held`. */
async function startHeldModel() {
  let release = () => {}
  const model = {
    url: '',
    held: true,
    /** The system prompts it was sent, in order (the Memory node puts the session's history there). */
    systems: [] as string[],
    release: () => release(),
  }
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const readBody = async (req: IncomingMessage) => {
    let text = ''
    for await (const chunk of req) text += chunk
    return JSON.parse(text) as { model: string; stream?: boolean; messages: { role: string; content: string }[] }
  }
  const server = createServer(async (req, res) => {
    const request = await readBody(req)
    model.systems.push(request.messages.find((m) => m.role === 'system')?.content ?? '')
    const user = request.messages.filter((m) => m.role === 'user').at(-1)?.content ?? ''
    const words = `Full reply to: ${user}`.split(/(?<= )/)
    const base = { id: 'chatcmpl-fake', created: 1, model: request.model }
    if (!request.stream) {
      res.writeHead(200, { 'content-type': 'application/json' })
      const message = { role: 'assistant', content: words.join('') }
      res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message }] }))
      return
    }
    const chunk = (delta: Record<string, string>, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk({ role: 'assistant', content: '' }))
    res.write(chunk({ content: words[0] ?? '' }))
    if (model.held) await gate
    if (res.destroyed) return
    for (const word of words.slice(1)) res.write(chunk({ content: word }))
    res.write(chunk({}, 'stop'))
    res.end('data: [DONE]\n\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    release()
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  model.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return model
}

const model = await startHeldModel()
const stack = await startProcessStack(t, {
  persistentData: true,
  env: {
    'run-service': { OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'sk-fault', OPENAI_DEFAULT_MODEL: 'fake-model' },
  },
})
t.teardown(() => {
  if (!t.passing()) t.comment(`output of the services:\n${stack.output()}`)
})

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: { 'x-api-key': KEY_A, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_MS),
  })
  const text = await res.text()
  return { status: res.status, text, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
}

const imported = await api(
  'POST',
  '/api/v1/flows/',
  JSON.parse(readFileSync(join(fixturesDir, 'langflow-memory-chatbot.json'), 'utf8')),
)
if (imported.status !== 201) throw new Error(`import: ${imported.status} ${imported.text}`)
const flowId = imported.body?.id as string
const SESSION = 'killed-mid-stream'
const FIRST = 'tell me a long story'
const PARTIAL = 'Full '

interface StreamEvent {
  event: string
  data: Record<string, unknown>
}

t.test('SIGKILL of the run-service mid-stream: an error event last, no complete partial reply', async (t) => {
  const res = await fetch(`${stack.gatewayUrl}/api/v1/run/${flowId}?stream=true`, {
    method: 'POST',
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
    body: JSON.stringify({ input_value: FIRST, session_id: SESSION }),
    signal: AbortSignal.timeout(STEP_MS),
  })
  t.equal(res.status, 200, 'the stream started')
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  const events: StreamEvent[] = []
  let buffered = ''
  /** Reads until `stop(events)` holds or the stream ends; resolves how it ended. */
  const readUntil = async (stop: (events: StreamEvent[]) => boolean): Promise<'stopped' | 'done' | string> => {
    try {
      while (!stop(events)) {
        const { done, value } = await reader.read()
        if (done) return 'done'
        buffered += decoder.decode(value, { stream: true })
        const lines = buffered.split('\n')
        buffered = lines.pop() ?? ''
        for (const line of lines) if (line.trim() !== '') events.push(JSON.parse(line) as StreamEvent)
      }
      return 'stopped'
    } catch (error) {
      return `error: ${(error as Error).name} ${(error as Error).message}`
    }
  }

  const first = await readUntil((list) => list.some((e) => e.event === 'token'))
  t.equal(first, 'stopped', 'the first token arrived')
  const token = events.find((e) => e.event === 'token')
  t.equal(token?.data.chunk, PARTIAL, 'the partial reply was streamed')
  t.same(
    events.map((e) => e.event),
    ['add_message', 'token'],
    'the user message was stored, the reply is under way',
  )

  const exit = await stack.kill('run-service', 'SIGKILL')
  t.equal(exit.signal, 'SIGKILL', 'the run-service was killed mid-stream')
  const ending = await readUntil(() => false)
  const names = events.map((e) => e.event)
  t.notOk(names.includes('end'), `no end event (events: ${names.join(', ')}; the stream ended: ${ending})`)
  t.equal(ending, 'done', 'the response ended normally: not cut, not timed out')
  t.equal(buffered, '', 'and not in the middle of a line')
  t.same(names, ['add_message', 'token', 'error'], 'the events so far, then one error event, last')
  const error = String(events.at(-1)?.data.error ?? '')
  t.match(error, /run-service stopped answering during the run/, `the error names what happened: ${error}`)
  t.match(error, /outcome is unknown/)
  const requestId = res.headers.get('x-request-id') ?? ''
  t.ok(requestId !== '' && error.includes(requestId), 'and the request id')
  // the gateway's output comes through a pipe: it may arrive a little after the response
  const warnedLines = () =>
    stack.services.gateway
      .output()
      .split('\n')
      .filter((line) => line.includes('broke off'))
  for (const deadline = Date.now() + 5_000; warnedLines().length === 0 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const warned = warnedLines()
  t.equal(warned.length, 1, 'the gateway logged it once')
  t.match(JSON.parse(warned[0] ?? '{}'), { level: 40, reqId: requestId, upstream: 'run-service' })
  t.notMatch(warned[0] ?? '', new RegExp(`${FIRST}|${PARTIAL.trim()}`), 'without message text')
  t.comment(`measured: client stream after SIGKILL: events [${names.join(', ')}], ended: ${ending}`)

  // Nothing of the reply was stored: only the user's message is in the session.
  const stored = await sessionMessages(stack.gatewayUrl, KEY_A, flowId, SESSION)
  t.same(
    stored.map((m) => [m.sender, m.text, m.error]),
    [['User', FIRST, false]],
    'the session holds the user message only',
  )
  const partial = stored.filter((m) => m.sender === 'Machine' && !m.error)
  t.same(partial, [], 'no Machine message stored as complete')
})

t.test('after a restart, the session goes on without the partial reply', async (t) => {
  await stack.restart('run-service')
  model.held = false
  model.release()
  const before = model.systems.length
  const second = 'and now a short one'
  const res = await api('POST', `/api/v1/run/${flowId}`, { input_value: second, session_id: SESSION })
  t.equal(res.status, 200, 'the run answers 200')
  if (res.status !== 200) t.comment(res.text)
  t.equal(model.systems.length, before + 1, 'one model call')
  const history = model.systems.at(-1) ?? ''
  t.ok(history.includes(FIRST), 'the history holds the first question')
  t.notOk(history.includes(PARTIAL.trim()), 'and nothing of the partial reply')
  const stored = await sessionMessages(stack.gatewayUrl, KEY_A, flowId, SESSION)
  t.same(
    stored.map((m) => [m.sender, m.text, m.error]),
    [
      ['User', FIRST, false],
      ['User', second, false],
      ['Machine', `Full reply to: ${second}`, false],
    ],
    'the session: both questions and the one complete reply',
  )
})
