import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Message } from '@session-runtime/schemas'
import { type FakeModel, fakeReply, startFakeModel } from '@session-runtime/stack'
import t from 'tap'
import {
  buildTestApp,
  internalHeaders,
  type MessageStore,
  sessionMessages,
  startMessageStore,
  storageKind,
  type TestApp,
} from './helpers/app.js'
import { type FIXTURES, type FlowJson, fixture, nodeIdOfType, setValue } from './helpers/flows.js'

t.comment(`storage: ${storageKind}`)

type Fixture = keyof typeof FIXTURES

interface RunBody {
  session_id: string
  outputs: { inputs: { input_value: string }; outputs: ResultData[] }[]
}

interface ResultData {
  component_id: string
  results: { message: Message }
  outputs: { message: { message: string; type: string } }
  messages: { message: string; session_id: string }[]
}

interface StreamEvent {
  event: string
  data: Record<string, unknown>
}

const store: MessageStore = await startMessageStore(t)
const model: FakeModel = await startFakeModel(t)

function modelEnv(extra: Record<string, string> = {}) {
  return {
    OPENAI_BASE_URL: model.url,
    OPENAI_API_KEY: 'sk-test',
    OPENAI_DEFAULT_MODEL: 'fake-model',
    ...extra,
  }
}

const app: TestApp = await buildTestApp(t, { messageStoreUrl: store.url, env: modelEnv() })

t.beforeEach(() => {
  model.mode = 'ok'
  model.calls.length = 0
})

async function importFlow(
  target: TestApp,
  name: Fixture,
  tenant = 'tenant-a',
): Promise<{ id: string; json: FlowJson }> {
  const json = fixture(name)
  const res = await target.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(tenant),
    payload: json,
  })
  if (res.statusCode !== 201) throw new Error(`import of ${name}: ${res.statusCode} ${res.body}`)
  return { id: (res.json() as { id: string }).id, json }
}

function runFlow(
  target: TestApp,
  flow: string,
  payload?: Record<string, unknown>,
  { tenant = 'tenant-a', stream = false } = {},
) {
  return target.inject({
    method: 'POST',
    url: `/api/v1/run/${encodeURIComponent(flow)}${stream ? '?stream=true' : ''}`,
    headers: internalHeaders(tenant),
    ...(payload === undefined ? {} : { payload }),
  })
}

/** Every message of (flow, session), oldest first, read through the message-store's monitor API. */
const storedMessages = (flowId: string, sessionId?: string, tenant = 'tenant-a'): Promise<Message[]> =>
  sessionMessages(store, tenant, flowId, sessionId)

function chatText(body: RunBody): string {
  return body.outputs[0]?.outputs[0]?.outputs.message.message ?? '<none>'
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function parseEvents(body: string): StreamEvent[] {
  return body
    .split('\n\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as StreamEvent)
}

t.test('Simple API Test runs without a model; no session_id makes the flow id the session', async (t) => {
  const { id } = await importFlow(app, 'simple')
  const res = await runFlow(app, id, { input_value: 'ping' })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json() as RunBody
  t.equal(body.session_id, id, 'the flow id is the session')
  t.equal(body.outputs[0]?.inputs.input_value, 'ping')
  t.equal(chatText(body), 'ping')
  t.equal(body.outputs[0]?.outputs[0]?.results.message.text, 'ping')
  t.equal(body.outputs[0]?.outputs[0]?.results.message.sender_name, 'AI', 'TextInput wired into sender_name')
  t.equal(model.calls.length, 0, 'no model call')
  const stored = await storedMessages(id)
  t.same(
    stored.map((m) => [m.text, m.sender, m.session_id]),
    [
      ['ping', 'User', id],
      ['ping', 'Machine', id],
    ],
  )
  const empty = await app.inject({ method: 'POST', url: `/api/v1/run/${id}`, headers: internalHeaders() })
  t.equal(empty.statusCode, 200, `a missing body is {}: ${empty.body}`)
  const emptyJson = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${id}`,
    headers: { ...internalHeaders(), 'content-type': 'application/json' },
    payload: '',
  })
  t.equal(emptyJson.statusCode, 200, `an empty JSON body is {}: ${emptyJson.body}`)
})

t.test('a flow is found by its endpoint name too', async (t) => {
  const { id } = await importFlow(app, 'simple')
  const patch = await app.inject({
    method: 'PATCH',
    url: `/api/v1/flows/${id}`,
    headers: internalHeaders(),
    payload: { endpoint_name: 'simple-endpoint' },
  })
  t.equal(patch.statusCode, 200)
  const res = await runFlow(app, 'simple-endpoint', { input_value: 'by name', session_id: 's-name' })
  t.equal(res.statusCode, 200, res.body)
  t.equal((res.json() as RunBody).session_id, 's-name')
})

t.test('Basic Prompting runs against the model with the configured defaults', async (t) => {
  const { id, json } = await importFlow(app, 'basic')
  const res = await runFlow(app, id, { input_value: 'Hello there', session_id: 'basic-1' })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json() as RunBody
  t.equal(body.session_id, 'basic-1')
  t.equal(chatText(body), fakeReply('Hello there'))
  t.equal(model.calls.length, 1)
  const call = model.calls[0]
  t.equal(call?.model, 'fake-model')
  t.equal(call?.authorization, 'Bearer sk-test')
  t.equal(call?.stream, false)
  t.equal(call?.user, 'Hello there')
  const prompt = json.data.nodes.find((n) => n.data.type === 'Prompt')?.data.node.template.template?.value
  t.equal(call?.system, prompt, 'the Prompt becomes the system message')
  const stored = await storedMessages(id, 'basic-1')
  t.same(
    stored.map((m) => [m.sender, m.text, m.session_id]),
    [
      ['User', 'Hello there', 'basic-1'],
      ['Machine', fakeReply('Hello there'), 'basic-1'],
    ],
  )
})

t.test('Memory Chatbot: two interleaved sessions over 3 turns keep their histories apart', async (t) => {
  const { id } = await importFlow(app, 'memory')
  for (let turn = 1; turn <= 3; turn++) {
    for (const session of ['alice', 'bob']) {
      const said = `${session} says ${turn}`
      const res = await runFlow(app, id, { input_value: said, session_id: session })
      t.equal(res.statusCode, 200, res.body)
      t.equal(chatText(res.json() as RunBody), fakeReply(said))
      const call = model.calls.at(-1)
      t.equal(call?.user, said)
      const system = call?.system ?? ''
      for (let earlier = 1; earlier < turn; earlier++) {
        t.match(system, `User: ${session} says ${earlier}`, `${session} turn ${turn} sees its turn ${earlier}`)
        t.match(system, `AI: ${fakeReply(`${session} says ${earlier}`)}`)
      }
      t.match(system, `User: ${said}`, 'the current user message is part of the history')
      const other = session === 'alice' ? 'bob' : 'alice'
      t.notMatch(system, other, `${session} never sees ${other}'s messages`)
    }
  }
  for (const session of ['alice', 'bob']) {
    const stored = await storedMessages(id, session)
    t.equal(stored.length, 6, `${session}: 3 questions and 3 answers`)
    t.ok(
      stored.every((m) => m.session_id === session && m.text.includes(session)),
      `${session}: every message carries the session`,
    )
  }
})

t.test('a component-level session (stored in the flow, or as a tweak) applies without a request session', async (t) => {
  const { id, json } = await importFlow(app, 'memory')
  const chatInput = nodeIdOfType(json, 'ChatInput')
  const memory = nodeIdOfType(json, 'Memory')
  setValue(json, chatInput, 'session_id', 'stored-s')
  setValue(json, memory, 'session_id', 'stored-s')
  const patch = await app.inject({
    method: 'PATCH',
    url: `/api/v1/flows/${id}`,
    headers: internalHeaders(),
    payload: { data: json.data },
  })
  t.equal(patch.statusCode, 200, patch.body.slice(0, 300))

  const first = await runFlow(app, id, { input_value: 'first' })
  t.equal(first.statusCode, 200, first.body)
  t.equal((first.json() as RunBody).session_id, 'stored-s', "the ChatInput's stored session")
  const second = await runFlow(app, id, { input_value: 'second' })
  t.equal(second.statusCode, 200)
  t.match(model.calls.at(-1)?.system ?? '', 'User: first', 'Memory reads the stored session')
  t.same(
    (await storedMessages(id, 'stored-s')).map((m) => m.text),
    ['first', fakeReply('first'), 'second', fakeReply('second')],
  )

  const tweaks = { [chatInput]: { session_id: 'tweak-s' }, [memory]: { session_id: 'tweak-s' } }
  const tweaked = await runFlow(app, id, { input_value: 'tweaked', tweaks })
  t.equal(tweaked.statusCode, 200, tweaked.body)
  t.equal((tweaked.json() as RunBody).session_id, 'tweak-s', 'a tweak beats the stored value')
  t.notMatch(model.calls.at(-1)?.system ?? '', 'first', 'the tweaked session has its own history')
  t.same(
    (await storedMessages(id, 'tweak-s')).map((m) => [m.text, m.session_id]),
    [
      ['tweaked', 'tweak-s'],
      [fakeReply('tweaked'), 'tweak-s'],
    ],
  )

  const overridden = await runFlow(app, id, { input_value: 'mine', session_id: 'request-s', tweaks })
  t.equal(overridden.statusCode, 200)
  t.equal((overridden.json() as RunBody).session_id, 'request-s', "the request's session_id wins")
  t.same(
    (await storedMessages(id, 'request-s')).map((m) => m.session_id),
    ['request-s', 'request-s'],
  )
  t.equal((await storedMessages(id)).length, 8, 'no message went anywhere else (e.g. the flow id)')
})

t.test('streaming: Langflow wire format, tokens into one stored reply, end last', async (t) => {
  const { id } = await importFlow(app, 'basic')
  const res = await runFlow(app, id, { input_value: 'stream me', session_id: 'st-1' }, { stream: true })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  t.notMatch(res.body, /^data:/m, 'not data:-framed')
  t.ok(res.body.endsWith('\n\n'), 'every event ends with a blank line')
  const events = parseEvents(res.body)
  t.same(
    events.map((e) => e.event).filter((name, i, all) => name !== 'token' || all[i - 1] !== 'token'),
    ['add_message', 'token', 'add_message', 'end'],
  )
  const tokens = events.filter((e) => e.event === 'token')
  t.ok(tokens.length > 1, 'several token events')
  t.equal(tokens.map((e) => e.data.chunk).join(''), fakeReply('stream me'))
  const reply = events[events.length - 2]?.data as unknown as Message
  t.ok(
    tokens.every((e) => e.data.id === reply.id),
    'tokens carry the id of the stored reply',
  )
  t.equal(reply.text, fakeReply('stream me'))
  t.equal(model.calls[0]?.stream, true, '?stream=true streams the model')
  const end = events.at(-1)?.data.result as RunBody
  t.equal(end.session_id, 'st-1')
  t.equal(chatText(end), fakeReply('stream me'))
  const stored = await storedMessages(id, 'st-1')
  t.same(
    stored.map((m) => m.id),
    events.filter((e) => e.event === 'add_message').map((e) => (e.data as unknown as Message).id),
    'add_message for every stored message, once',
  )
})

t.test('a model failure: 502 naming the component, an error message in the session, never in a history', async (t) => {
  const { id } = await importFlow(app, 'memory')
  model.mode = 'fail'
  const res = await runFlow(app, id, { input_value: 'doomed', session_id: 'f-1' })
  t.equal(res.statusCode, 502, res.body)
  const error = res.json() as { detail: string; code: string }
  t.match(error.detail, 'Language Model')
  t.equal(error.code, 'RUNSVC_MODEL_PROVIDER_FAILED')
  const stored = await storedMessages(id, 'f-1')
  const errors = stored.filter((m) => m.error)
  t.equal(errors.length, 1, 'one error message')
  t.equal(errors[0]?.category, 'error')
  t.equal(errors[0]?.session_id, 'f-1')

  model.mode = 'ok'
  const next = await runFlow(app, id, { input_value: 'again', session_id: 'f-1' })
  t.equal(next.statusCode, 200, next.body)
  const system = model.calls.at(-1)?.system ?? ''
  t.match(system, 'User: doomed')
  t.notMatch(system, 'Error running component', 'the error message is not part of the history')

  model.mode = 'fail'
  const streamed = await runFlow(app, id, { input_value: 'doomed too', session_id: 'f-2' }, { stream: true })
  t.equal(streamed.statusCode, 200)
  const events = parseEvents(streamed.body)
  t.equal(events.at(-1)?.event, 'error', 'a failed stream ends with error')
  t.match(String(events.at(-1)?.data.error), 'Language Model')
  t.equal(events.filter((e) => e.event === 'end' || e.event === 'error').length, 1)
})

t.test('a model that does not answer in time: 502', async (t) => {
  const slow = await buildTestApp(t, { messageStoreUrl: store.url, env: modelEnv({ OPENAI_TIMEOUT_MS: '300' }) })
  const { id } = await importFlow(slow, 'basic')
  model.mode = 'hang'
  const res = await runFlow(slow, id, { input_value: 'anyone?' })
  t.equal(res.statusCode, 502, res.body)
  t.match((res.json() as { detail: string }).detail, /Language Model.*300 ms/)
})

t.test('a client that disconnects cancels the run', async (t) => {
  const live = await buildTestApp(t, { messageStoreUrl: store.url, env: modelEnv() })
  await live.listen({ host: '127.0.0.1', port: 0 })
  const { id } = await importFlow(live, 'basic')
  model.mode = 'hang'
  const abandonedBefore = model.abandoned
  const { port } = live.server.address() as AddressInfo
  const request = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: `/api/v1/run/${id}?stream=true`,
    headers: { ...internalHeaders(), 'content-type': 'application/json' },
    agent: false,
  })
  request.on('error', () => {})
  const response = new Promise<IncomingMessage>((resolve) => request.on('response', resolve))
  request.end(JSON.stringify({ input_value: 'bye', session_id: 'gone' }))
  t.equal((await response).statusCode, 200)
  await until(() => model.calls.length === 1)
  request.destroy()
  await until(() => model.abandoned > abandonedBefore)
  t.pass('the model call was aborted')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const stored = await storedMessages(id, 'gone')
  t.same(
    stored.map((m) => [m.text, m.error]),
    [['bye', false]],
    'only the user message: no reply, no error message',
  )
})

t.test('the message-store down: 503 with a clear message', async (t) => {
  const orphan = await buildTestApp(t, { env: modelEnv() })
  const { id } = await importFlow(orphan, 'simple')
  const res = await runFlow(orphan, id, { input_value: 'hello?' })
  t.equal(res.statusCode, 503, res.body)
  const body = res.json() as { detail: string; code: string }
  t.equal(body.code, 'RUNSVC_MESSAGE_STORE_UNAVAILABLE')
  t.match(body.detail, /message-store is unavailable/)
})

t.test('errors before the flow starts are ordinary JSON errors', async (t) => {
  const { id } = await importFlow(app, 'simple')
  const unknown = await runFlow(app, '00000000-0000-4000-8000-000000000000', {}, { stream: true })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.headers['content-type'], /application\/json/)
  t.equal(
    (unknown.json() as { detail: string }).detail,
    'Flow identifier 00000000-0000-4000-8000-000000000000 not found',
  )
  const noName = await runFlow(app, 'no-such-endpoint')
  t.equal(noName.statusCode, 404)
  const foreign = await runFlow(app, id, { input_value: 'x' }, { tenant: 'tenant-b' })
  t.equal(foreign.statusCode, 404, "another tenant's flow is not found")
  t.equal((foreign.json() as { detail: string }).detail, `Flow identifier ${id} not found`)

  const numeric = await runFlow(app, id, { session_id: 42 })
  t.equal(numeric.statusCode, 422)
  t.match((numeric.json() as { detail: string }).detail, 'session_id')
  const badType = await runFlow(app, id, { input_type: 'voice' }, { stream: true })
  t.equal(badType.statusCode, 422)
  t.match((badType.json() as { detail: string }).detail, 'input_type')

  const conflict = await runFlow(app, id, { input_value: 'a', tweaks: { 'ChatInput-3OQi9': { input_value: 'b' } } })
  t.equal(conflict.statusCode, 400, conflict.body)
  t.equal((conflict.json() as { code: string }).code, 'RUNSVC_TWEAK_CONFLICT')

  const huge = await runFlow(app, id, { input_value: 'x'.repeat(100_001) })
  t.equal(huge.statusCode, 413)
  t.equal((huge.json() as { code: string }).code, 'RUNSVC_INPUT_TOO_LARGE')
  const malformed = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${id}`,
    headers: { ...internalHeaders(), 'content-type': 'application/json' },
    payload: '{"input_value":',
  })
  t.equal(malformed.statusCode, 400)
  const overLimit = await runFlow(app, id, { input_value: 'x', tweaks: { pad: 'y'.repeat(1024 * 1024 + 1) } })
  t.equal(overLimit.statusCode, 413, 'a body over the 1 MiB limit')
  t.equal((overLimit.json() as { code: string }).code, 'RUNSVC_PAYLOAD_TOO_LARGE')
  t.equal((await storedMessages(id)).length, 0, 'nothing ran')
})
