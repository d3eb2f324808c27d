// A Langflow client nobody here wrote — the public npm package @datastax/langflow-client — works against
// the gateway unchanged: runs, streams and errors as it expects them from Langflow. The stack runs as
// real processes (startProcessStack of packages/stack); the flow is imported over plain HTTP, as a user would.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { LangflowClient } from '@datastax/langflow-client'
import { LangflowError } from '@datastax/langflow-client/errors'
import { FlowResponse } from '@datastax/langflow-client/flow_response'
import { fakeReply, KEY_A, KEY_B, repoRoot as root, startFakeModel, startProcessStack } from '@session-runtime/stack'
import t, { type Test } from 'tap'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
const chatbot = JSON.parse(readFileSync(join(fixturesDir, 'langflow-memory-chatbot.json'), 'utf8')) as { id: string }

const model = await startFakeModel(t)
const stack = await startProcessStack(t, { modelUrl: model.url })

const imported = await fetch(`${stack.gatewayUrl}/api/v1/flows/`, {
  method: 'POST',
  headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
  body: JSON.stringify(chatbot),
  signal: AbortSignal.timeout(20_000),
})
if (imported.status !== 201) throw new Error(`import: ${imported.status} ${await imported.text()}`)
const flowId = ((await imported.json()) as { id: string }).id

const client = new LangflowClient({ baseUrl: stack.gatewayUrl, apiKey: KEY_A })

/** The LangflowError `promise` rejects with (a failure if it resolves or rejects with anything else). */
async function langflowError(t: Test, promise: Promise<unknown>): Promise<LangflowError | undefined> {
  try {
    await promise
    t.fail('expected a LangflowError')
  } catch (error) {
    if (error instanceof LangflowError) return error
    t.fail(`expected a LangflowError, got ${String(error)}`)
  }
  return undefined
}

t.test('flow(id).run returns the chat text and the session', async (t) => {
  const response = await client.flow(flowId).run('hello from the client', { session_id: 'client-1' })
  t.equal(response.chatOutputText(), fakeReply('hello from the client'))
  t.equal(response.sessionId, 'client-1')

  // The same session continues: the Memory node hands the model this session's history.
  const again = await client.flow(flowId).run('and again', { session_id: 'client-1' })
  t.equal(again.chatOutputText(), fakeReply('and again'))
  t.equal(again.sessionId, 'client-1')
  t.ok(model.calls.at(-1)?.system?.includes('User: hello from the client'), 'the history reached the model')

  // Without a session the client sends none; the flow's ChatInput resolves it to the flow ID (spec §2).
  const anonymous = await client.flow(flowId).run('no session given')
  t.equal(anonymous.sessionId, flowId)
  t.equal(anonymous.chatOutputText(), fakeReply('no session given'))
})

t.test('flow.stream yields add_message, the tokens, add_message and end, last', async (t) => {
  const input = 'stream it to the client'
  const reply = fakeReply(input)
  const stream = await client.flow(flowId).stream(input, { session_id: 'client-2' })
  const events: { event: string; data: Record<string, unknown> }[] = []
  for await (const event of stream) events.push(event as unknown as (typeof events)[number])

  const names = events.map((e) => e.event)
  const pieces = reply.split(/(?<= )/)
  t.same(names, ['add_message', ...pieces.map(() => 'token'), 'add_message', 'end'], 'events in order')
  t.equal(names.at(-1), 'end', 'end is last')
  t.equal(events[0]?.data.text, input, 'the first add_message is the question')
  t.equal(events[0]?.data.session_id, 'client-2')
  t.equal(
    events
      .filter((e) => e.event === 'token')
      .map((e) => e.data.chunk)
      .join(''),
    reply,
    'the tokens spell the reply',
  )
  t.equal(events.at(-2)?.data.text, reply, 'the second add_message is the reply')
  const end = events.at(-1)?.data as { result: { session_id: string; outputs: FlowResponse['outputs'] } }
  const final = new FlowResponse(end.result)
  t.equal(final.chatOutputText(), reply, "end's result, read the client's way, has the final text")
  t.equal(final.sessionId, 'client-2')
})

t.test('a bad key surfaces as a LangflowError with status 403', async (t) => {
  const bad = new LangflowClient({ baseUrl: stack.gatewayUrl, apiKey: 'not-a-key-0123456789' })
  const runError = await langflowError(t, bad.flow(flowId).run('hi'))
  t.equal(runError?.cause.status, 403, 'run')
  t.match(runError?.message, /^403/)
  const streamError = await langflowError(t, bad.flow(flowId).stream('hi'))
  t.equal(streamError?.cause.status, 403, 'stream')
  t.same(await streamError?.cause.json(), { detail: 'Invalid or missing API key', code: 'GATEWAY_INVALID_API_KEY' })

  // Another tenant's valid key: the flow does not exist for it.
  const other = new LangflowClient({ baseUrl: stack.gatewayUrl, apiKey: KEY_B })
  const foreign = await langflowError(t, other.flow(flowId).run('hi'))
  t.equal(foreign?.cause.status, 404, "another tenant's flow is a 404")
})
