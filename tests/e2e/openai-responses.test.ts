// OpenAI's official npm SDK (`openai`), nobody here wrote it, against the gateway's `POST /api/v1/responses`
// (Langflow's OpenAI-compatible endpoint): `client.responses.create`, plain and streamed, with the flow as the
// model and `previous_response_id` continuing the conversation. The stack runs as real processes
// (startProcessStack of packages/stack); the turns are checked through the monitor API.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fakeReply, KEY_A, KEY_B, repoRoot as root, startFakeModel, startProcessStack } from '@session-runtime/stack'
import OpenAI, { NotFoundError, UnprocessableEntityError } from 'openai'
import t from 'tap'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
const chatbot = JSON.parse(readFileSync(join(fixturesDir, 'langflow-memory-chatbot.json'), 'utf8')) as {
  id: string
}

// the fake model's reply names the user's words and shows the prompt it was given (with Memory's history)
const model = await startFakeModel(t, { reply: (call) => `${fakeReply(call.user)} [prompt: ${call.system ?? ''}]` })
const stack = await startProcessStack(t, { modelUrl: model.url })

async function api(method: string, path: string, key = KEY_A, body?: unknown) {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(20_000),
  })
  return { status: res.status, body: (await res.json()) as unknown }
}

const imported = await api('POST', '/api/v1/flows/', KEY_A, { ...chatbot, endpoint_name: 'memory-chatbot' })
if (imported.status !== 201) throw new Error(`import: ${imported.status} ${JSON.stringify(imported.body)}`)
const flowId = (imported.body as { id: string }).id

/** As Langflow's docs say: the key as `x-api-key`; the SDK's own `apiKey` (a Bearer token) is not used. */
const clientOf = (key: string) =>
  new OpenAI({ baseURL: `${stack.gatewayUrl}/api/v1`, apiKey: 'unused', defaultHeaders: { 'x-api-key': key } })
const client = clientOf(KEY_A)

interface StoredMessage {
  sender: string
  text: string
  session_id: string
}
const storedTurns = async (sessionId: string) => {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId })
  const res = await api('GET', `/api/v1/monitor/messages?${query}`)
  return (res.body as StoredMessage[]).map((m) => [m.sender, m.text.replace(/ \[prompt: [\s\S]*$/, '')])
}

t.test('responses.create: the flow answers; previous_response_id continues the one session', async (t) => {
  const first = await client.responses.create({ model: flowId, input: 'My name is Ada' })
  t.equal(first.object, 'response')
  t.equal(first.status, 'completed')
  t.match(first.output_text, fakeReply('My name is Ada'), "the SDK's output_text is the flow's reply")
  t.ok((first.usage?.total_tokens ?? 0) > 0, "the model's token usage")
  t.equal(first.usage?.total_tokens, (first.usage?.input_tokens ?? 0) + (first.usage?.output_tokens ?? 0))

  const second = await client.responses.create({
    model: 'memory-chatbot',
    input: 'What is my name?',
    previous_response_id: first.id,
  })
  t.equal(second.id, first.id, "the response's id is the session, as Langflow's")
  t.equal(second.previous_response_id, first.id)
  t.match(second.output_text, fakeReply('What is my name?'))
  t.match(second.output_text, 'User: My name is Ada', 'Memory handed the model the first turn')

  t.same(
    await storedTurns(first.id),
    [
      ['User', 'My name is Ada'],
      ['Machine', fakeReply('My name is Ada')],
      ['User', 'What is my name?'],
      ['Machine', fakeReply('What is my name?')],
    ],
    'both turns are stored under the one session, as the monitor API shows them',
  )
  const sessions = await api('GET', `/api/v1/monitor/sessions?flow_id=${flowId}`)
  t.match(sessions.body, [{ session_id: first.id, message_count: 4 }], "the session is listed (the Playground's list)")
})

t.test("responses.create with stream: true: OpenAI's events, the tokens as deltas, then completed", async (t) => {
  const stream = await client.responses.create({ model: flowId, input: 'Stream a reply', stream: true })
  const events: OpenAI.Responses.ResponseStreamEvent[] = []
  for await (const event of stream) events.push(event)
  const types = events.map((e) => e.type)
  t.same(types.slice(0, 4), [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
  ])
  t.same(types.slice(-4), [
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ])
  const deltas = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : []))
  t.ok(deltas.length > 1, `the model's tokens arrive as ${deltas.length} deltas`)
  const completed = events.at(-1)
  if (completed?.type !== 'response.completed') throw new Error('no response.completed')
  const item = completed.response.output[0] as OpenAI.Responses.ResponseOutputMessage | undefined
  const part = item?.content[0]
  const text = part?.type === 'output_text' ? part.text : '<no text>'
  t.equal(deltas.join(''), text, 'the deltas spell the reply')
  t.match(text, fakeReply('Stream a reply'))
  t.ok((completed.response.usage?.output_tokens ?? 0) > 0, 'the streamed usage is in response.completed')
  t.same(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
    'numbered in order',
  )

  // the streamed conversation continues like any other
  const next = await client.responses.create({
    model: flowId,
    input: 'And once more',
    previous_response_id: completed.response.id,
    stream: true,
  })
  let last: OpenAI.Responses.ResponseStreamEvent | undefined
  for await (const event of next) last = event
  t.equal(last?.type, 'response.completed')
  t.same(
    await storedTurns(completed.response.id),
    [
      ['User', 'Stream a reply'],
      ['Machine', fakeReply('Stream a reply')],
      ['User', 'And once more'],
      ['Machine', fakeReply('And once more')],
    ],
    'the streamed turns are stored under one session',
  )
})

t.test("bad input: the SDK's NotFoundError and UnprocessableEntityError, nothing stored", async (t) => {
  const first = await client.responses.create({ model: flowId, input: "tenant A's secret" })
  const failure = async (promise: Promise<unknown>) => {
    try {
      await promise
    } catch (error) {
      return error
    }
    return undefined
  }

  const unknownFlow = await failure(client.responses.create({ model: 'no-such-flow', input: 'x' }))
  t.ok(unknownFlow instanceof NotFoundError, 'an unknown flow: 404')
  t.match((unknownFlow as NotFoundError).message, 'no-such-flow')

  const empty = await failure(client.responses.create({ model: flowId, input: '' }))
  t.ok(empty instanceof UnprocessableEntityError, 'an empty input: 422')
  t.equal((empty as UnprocessableEntityError).code, 'RUNSVC_VALIDATION', "OpenAI's error object carries the code")

  // tenant B has the same flow, but tenant A's session is no response of its
  const b = await api('POST', '/api/v1/flows/', KEY_B, chatbot)
  const flowB = (b.body as { id: string }).id
  const foreign = await failure(
    clientOf(KEY_B).responses.create({ model: flowB, input: 'let me in', previous_response_id: first.id }),
  )
  t.ok(foreign instanceof NotFoundError, "another tenant's previous_response_id: 404")
  const inB = await api(
    'GET',
    `/api/v1/monitor/messages?flow_id=${flowB}&session_id=${encodeURIComponent(first.id)}`,
    KEY_B,
  )
  t.same(inB.body, [], 'nothing stored in tenant B')
  t.equal((await storedTurns(first.id)).length, 2, "tenant A's session is untouched")
})
