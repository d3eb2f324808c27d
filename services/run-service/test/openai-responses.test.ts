import type { Message } from '@session-runtime/schemas'
import { type FakeModel, fakeReply, startFakeModel } from '@session-runtime/stack'
import t from 'tap'
import {
  outputTextOf,
  ResponseEvents,
  type RunResponse,
  responseObject,
  responseSessionId,
  responseUsage,
  runRequestOf,
} from '../src/index.js'
import {
  buildTestApp,
  internalHeaders,
  type MessageStore,
  startMessageStore,
  storageKind,
  type TestApp,
} from './helpers/app.js'
import { edge, type FIXTURES, fixture, flow, node } from './helpers/flows.js'

t.comment(`storage: ${storageKind}`)

// --- the mapping, alone ---

t.test('the session is previous_response_id, else a new ID; the run is chat in, chat out', async (t) => {
  const request = { model: 'flow', input: 'hi' }
  t.equal(
    responseSessionId(request, () => 'new'),
    'new',
  )
  t.equal(
    responseSessionId({ ...request, previous_response_id: 'earlier' }, () => 'new'),
    'earlier',
  )
  t.equal(
    responseSessionId({ ...request, previous_response_id: null }, () => 'new'),
    'new',
  )
  t.same(runRequestOf(request, 's1'), {
    input_value: 'hi',
    input_type: 'chat',
    output_type: 'chat',
    tweaks: {},
    session_id: 's1',
  })
})

t.test("the reply's text: the first reported message, else the first text result", async (t) => {
  const result = (messages: string[], results: Record<string, unknown>) => ({
    component_id: 'c',
    component_display_name: 'C',
    results,
    outputs: {},
    artifacts: {},
    logs: {},
    messages: messages.map((message) => ({
      message,
      sender: 'Machine',
      sender_name: 'AI',
      session_id: 's',
      stream_url: null,
      component_id: 'c',
      files: [],
      type: 'text',
    })),
    timedelta: null,
    duration: null,
    used_frozen_result: false,
  })
  const run = (...outputs: ReturnType<typeof result>[]): RunResponse => ({
    session_id: 's',
    outputs: [{ inputs: { input_value: 'x' }, outputs }],
  })
  t.equal(outputTextOf(run(result(['first', 'second'], {}), result(['third'], {}))), 'first')
  t.equal(outputTextOf(run(result([], { message: { text: 'from a Message' } }))), 'from a Message')
  t.equal(outputTextOf(run(result([], { text: 'a string' }))), 'a string')
  t.equal(outputTextOf(run(result([], { rows: [1] }))), '')
  t.equal(outputTextOf({ session_id: 's', outputs: [] }), '')
})

t.test("the response object has OpenAI's fields with Langflow's defaults", async (t) => {
  const body = responseObject({
    id: 's1',
    createdAt: 5,
    model: 'flow',
    previousResponseId: null,
    status: 'completed',
    output: [],
  })
  t.match(body, {
    id: 's1',
    object: 'response',
    created_at: 5,
    status: 'completed',
    error: null,
    model: 'flow',
    previous_response_id: null,
    store: true,
    usage: null,
    text: { format: { type: 'text' } },
  })
})

t.test("streamed events: OpenAI's order, numbered, the unstreamed rest of the reply as a last delta", async (t) => {
  const events = new ResponseEvents({ id: 's1', createdAt: 5, model: 'flow', previousResponseId: 'p' })
  const all = [...events.start(), ...events.delta('Hello '), ...events.delta(''), ...events.complete('Hello world')]
  t.same(
    all.map((e) => e.type),
    [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ],
  )
  t.same(
    all.map((e) => e.sequence_number),
    all.map((_, i) => i),
    'numbered from 0',
  )
  t.same(
    all.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta),
    ['Hello ', 'world'],
  )
  t.match(all.at(-1), {
    response: { id: 's1', status: 'completed', previous_response_id: 'p', output: [{ id: 'msg_s1' }] },
  })
  t.match(all.at(-4), { text: 'Hello world', item_id: 'msg_s1' })

  const nothingStreamed = new ResponseEvents({ id: 's2', createdAt: 5, model: 'flow', previousResponseId: null })
  const done = nothingStreamed.complete('whole reply')
  t.same(
    done.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta),
    ['whole reply'],
    'a reply without tokens is one delta',
  )
  const failed = new ResponseEvents({ id: 's3', createdAt: 5, model: 'flow', previousResponseId: null })
  t.match(failed.fail({ code: 'X', message: 'broke' }), [
    { type: 'response.failed', response: { status: 'failed', error: { code: 'X', message: 'broke' } } },
  ])
})

t.test("the response's usage: the sums of the stored messages' properties.usage, null without any", async (t) => {
  const usage = (input_tokens: unknown, output_tokens: unknown, total_tokens: unknown) => ({
    properties: { usage: { input_tokens, output_tokens, total_tokens } },
  })
  t.same(responseUsage([usage(3, 4, 7), { properties: {} }, usage(1, 1, 2), usage('x', 1, 1), {}]), {
    input_tokens: 4,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 9,
  })
  t.equal(responseUsage([{ properties: {} }, usage(-1, 0, 0)]), null)
})

// --- through the app ---

const store: MessageStore = await startMessageStore(t)
const model: FakeModel = await startFakeModel(t, { reply: (call) => `${fakeReply(call.user)} | ${call.system ?? ''}` })
const app: TestApp = await buildTestApp(t, {
  messageStoreUrl: store.url,
  env: { OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'sk-test', OPENAI_DEFAULT_MODEL: 'fake-model' },
})

async function importFlow(name: keyof typeof FIXTURES, tenant = 'tenant-a', endpoint?: string): Promise<string> {
  const json = { ...fixture(name), ...(endpoint ? { endpoint_name: endpoint } : {}) }
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(tenant),
    payload: json,
  })
  if (res.statusCode !== 201) throw new Error(`import of ${name}: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

function respond(payload: unknown, tenant = 'tenant-a') {
  return app.inject({
    method: 'POST',
    url: '/api/v1/responses',
    headers: internalHeaders(tenant),
    payload: payload as Record<string, unknown>,
  })
}

async function stored(flowId: string, sessionId: string, tenant = 'tenant-a'): Promise<Message[]> {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId })
  const res = await store.inject({ url: `/api/v1/monitor/messages?${query}`, headers: internalHeaders(tenant) })
  return res.json() as Message[]
}

interface ResponseBody {
  usage: Record<string, unknown> | null
  id: string
  object: string
  status: string
  model: string
  previous_response_id: string | null
  output: { id: string; role: string; content: { type: string; text: string }[] }[]
}

const memory = await importFlow('memory', 'tenant-a', 'memory-bot')
const simple = await importFlow('simple')

t.test(
  'a response runs the flow named by endpoint name; its id is the session, continued by previous_response_id',
  async (t) => {
    const first = await respond({ model: 'memory-bot', input: 'my name is Ada' })
    t.equal(first.statusCode, 200, first.body)
    const one = first.json() as ResponseBody
    t.match(one, { object: 'response', status: 'completed', model: 'memory-bot', previous_response_id: null })
    t.match(one.output, [{ id: `msg_${one.id}`, role: 'assistant', content: [{ type: 'output_text' }] }])
    t.match(one.output[0]?.content[0]?.text, fakeReply('my name is Ada'))
    const reply = (await stored(memory, one.id)).find((m) => m.sender === 'Machine')
    const tokens = reply?.properties.usage as { input_tokens: number; output_tokens: number; total_tokens: number }
    t.ok(tokens.total_tokens > 0, 'the reply carries the model usage')
    t.match(one.usage, tokens, "the response's usage is the reply's")

    const second = await respond({ model: memory, input: 'what is my name?', previous_response_id: one.id })
    t.equal(second.statusCode, 200, second.body)
    const two = second.json() as ResponseBody
    t.equal(two.id, one.id, 'the same session, so the same id (as Langflow)')
    t.equal(two.previous_response_id, one.id)
    t.match(
      two.output[0]?.content[0]?.text,
      'User: my name is Ada',
      "Memory shows the first turn in the model's prompt",
    )

    const messages = await stored(memory, one.id)
    t.same(
      messages.map((m) => [m.sender, m.text.split(' | ')[0]]),
      [
        ['User', 'my name is Ada'],
        ['Machine', fakeReply('my name is Ada')],
        ['User', 'what is my name?'],
        ['Machine', fakeReply('what is my name?')],
      ],
      'both turns stored under the one session',
    )
  },
)

t.test("a streamed response: OpenAI's events, the model's tokens as deltas, the turn stored", async (t) => {
  const res = await respond({ model: memory, input: 'stream me', stream: true })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const frames = res.body.split('\n\n').filter((frame) => frame !== '')
  t.equal(frames.at(-1), 'data: [DONE]', 'ends with [DONE]')
  const events = frames.slice(0, -1).map((frame) => {
    const [eventLine, dataLine] = frame.split('\n')
    const data = JSON.parse(dataLine?.replace(/^data: /, '') ?? 'null') as { type: string; delta?: string }
    t.equal(eventLine, `event: ${data.type}`, 'the SSE event name is the type')
    return data
  })
  t.equal(events[0]?.type, 'response.created')
  const completed = events.at(-1) as unknown as { type: string; response: ResponseBody }
  t.equal(completed.type, 'response.completed')
  const text = completed.response.output[0]?.content[0]?.text ?? ''
  const deltas = events.filter((e) => e.type === 'response.output_text.delta')
  t.ok(deltas.length > 1, `the model's tokens streamed (${deltas.length} deltas)`)
  t.equal(deltas.map((e) => e.delta).join(''), text, 'the deltas make the text')
  t.match(text, fakeReply('stream me'))
  t.equal((await stored(memory, completed.response.id)).length, 2, 'the turn is stored in the session')
})

t.test('a flow without a model answers its echo, streamed as one delta', async (t) => {
  const res = await respond({ model: simple, input: 'echo', stream: true })
  t.equal(res.statusCode, 200)
  t.match(res.body, /event: response\.output_text\.delta\ndata: \{[^\n]*"delta":"echo"/)
  t.match(res.body, /event: response\.completed\n/)
  const plain = await respond({ model: simple, input: 'echo' })
  t.equal((plain.json() as ResponseBody).output[0]?.content[0]?.text, 'echo')
})

t.test(
  "bad input: 404 unknown flow or session, 422 empty input or tools; the envelope with OpenAI's error",
  async (t) => {
    const cases: [string, unknown, number, string, string?][] = [
      ['unknown flow', { model: 'no-such-flow', input: 'x' }, 404, 'RUNSVC_FLOW_NOT_FOUND'],
      ["another tenant's flow", { model: memory, input: 'x' }, 404, 'RUNSVC_FLOW_NOT_FOUND', 'tenant-b'],
      ['empty input', { model: memory, input: '' }, 422, 'RUNSVC_VALIDATION'],
      ['no input', { model: memory }, 422, 'RUNSVC_VALIDATION'],
      ['no model', { input: 'x' }, 422, 'RUNSVC_VALIDATION'],
      ['input not a string', { model: memory, input: [{ role: 'user', content: 'x' }] }, 422, 'RUNSVC_VALIDATION'],
      ['tools', { model: memory, input: 'x', tools: [{ type: 'function' }] }, 422, 'RUNSVC_VALIDATION'],
      [
        'unknown session',
        { model: memory, input: 'x', previous_response_id: 'never-was' },
        404,
        'RUNSVC_RESPONSE_NOT_FOUND',
      ],
      ['empty body', undefined, 422, 'RUNSVC_VALIDATION'],
    ]
    for (const [what, payload, status, code, tenant] of cases) {
      const res = await respond(payload, tenant)
      t.equal(res.statusCode, status, `${what}: ${res.body}`)
      const body = res.json() as {
        detail: string
        code: string
        error: { message: string; type: string; code: string }
      }
      t.equal(body.code, code, what)
      t.same(
        body.error,
        { message: body.detail, type: 'invalid_request_error', param: null, code },
        `${what}: OpenAI's error`,
      )
    }
  },
)

t.test('a previous_response_id of another tenant, or of another flow, is a 404 and stores nothing', async (t) => {
  const own = (await respond({ model: memory, input: 'secret turn' })).json() as ResponseBody
  const otherMemory = await importFlow('memory', 'tenant-b')
  const res = await respond({ model: otherMemory, input: 'let me in', previous_response_id: own.id }, 'tenant-b')
  t.equal(res.statusCode, 404, res.body)
  t.equal((await stored(otherMemory, own.id, 'tenant-b')).length, 0, "nothing stored in tenant B's session")
  const otherFlow = await respond({ model: simple, input: 'x', previous_response_id: own.id })
  t.equal(otherFlow.statusCode, 404, 'a session of another flow of the tenant is not a response of this one')
  t.equal((await stored(memory, own.id)).length, 2, 'the original session is untouched')
})

t.test('a flow without a Chat Input cannot serve responses (422)', async (t) => {
  const json = {
    name: 'text only',
    ...flow(
      [node('text', 'TextInput', { input_value: 'x' }), node('out', 'ChatOutput', {})],
      [edge('text', 'text', 'out', 'input_value')],
    ),
  }
  delete json.id
  const res = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(), payload: json })
  t.equal(res.statusCode, 201, res.body)
  const answer = await respond({ model: (res.json() as { id: string }).id, input: 'x' })
  t.equal(answer.statusCode, 422, answer.body)
  t.match(answer.json(), { code: 'RUNSVC_VALIDATION', detail: /Chat Input/ })
})
