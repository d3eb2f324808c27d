// Fault: the run-service is killed (SIGKILL) in the middle of a streamed run, while the model is half-way
// through its reply. The client's stream (through the gateway) must end with an `error` event added by the
// gateway (the stream never just stops, spec §3), never with an `end` event, and end normally, not cut; the
// partial reply must never be stored as a complete message; and once the run-service is back, the session goes
// on without the partial reply in its history.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { KEY_A, repoRoot as root, startFakeModel, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import { sessionMessages } from '../helpers/load.js'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
/** Bound of every wait of this file (milliseconds). */
const STEP_MS = 30_000

// A model that streams its first word, then holds the stream until released.
const model = await startFakeModel(t, { reply: (call) => `Full reply to: ${call.user}` })
model.hold()
const stack = await startProcessStack(t, { persistentData: true, modelUrl: model.url })

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
  model.release()
  const before = model.calls.length
  const second = 'and now a short one'
  const res = await api('POST', `/api/v1/run/${flowId}`, { input_value: second, session_id: SESSION })
  t.equal(res.status, 200, 'the run answers 200')
  if (res.status !== 200) t.comment(res.text)
  t.equal(model.calls.length, before + 1, 'one model call')
  const history = model.calls.at(-1)?.system ?? ''
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
