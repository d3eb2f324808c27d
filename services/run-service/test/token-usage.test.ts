// Token usage (issue 15 point 4): the model components record the usage the provider reports on the reply
// message as Langflow does (`properties.usage`: input, output and total tokens), streamed runs included (the
// usage chunk is asked for), and /metrics counts the tokens by tenant and flow.
import type { Message } from '@session-runtime/schemas'
import { type FakeModel, fakeReply, fakeUsage, startFakeModel } from '@session-runtime/stack'
import t from 'tap'
import { tokenUsage } from '../src/index.js'
import { buildTestApp, internalHeaders, type MessageStore, startMessageStore, type TestApp } from './helpers/app.js'
import { fixture } from './helpers/flows.js'

t.test("the provider's usage in Langflow's names; nothing usable is no usage", async (t) => {
  t.same(tokenUsage({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }), {
    input_tokens: 3,
    output_tokens: 4,
    total_tokens: 7,
  })
  t.same(tokenUsage({ prompt_tokens: 3, completion_tokens: 4 }), { input_tokens: 3, output_tokens: 4, total_tokens: 7 })
  for (const reported of [
    undefined,
    null,
    'x',
    {},
    { prompt_tokens: -1, completion_tokens: 1 },
    { prompt_tokens: 1.5, completion_tokens: 1 },
  ]) {
    t.equal(tokenUsage(reported), undefined, JSON.stringify(reported))
  }
})

const store: MessageStore = await startMessageStore(t)
const model: FakeModel = await startFakeModel(t)
const app: TestApp = await buildTestApp(t, {
  messageStoreUrl: store.url,
  env: { OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'sk-test', OPENAI_DEFAULT_MODEL: 'fake-model' },
})

const imported = await app.inject({
  method: 'POST',
  url: '/api/v1/flows/',
  headers: internalHeaders('tenant-u'),
  payload: fixture('memory'),
})
const flowId = (imported.json() as { id: string }).id

async function reply(sessionId: string): Promise<Message | undefined> {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId })
  const res = await store.inject({ url: `/api/v1/monitor/messages?${query}`, headers: internalHeaders('tenant-u') })
  return (res.json() as Message[]).find((m) => m.sender === 'Machine')
}

async function tokens(kind: string): Promise<number> {
  const text = (await app.inject({ url: '/metrics' })).body
  const line = text
    .split('\n')
    .find(
      (l) => l.startsWith('model_tokens_total{') && l.includes(`flow_id="${flowId}"`) && l.includes(`kind="${kind}"`),
    )
  if (line && !line.includes('tenant="tenant-u"')) throw new Error(`another tenant: ${line}`)
  return line ? Number(line.split(' ').at(-1)) : 0
}

for (const stream of [false, true]) {
  t.test(`a ${stream ? 'streamed' : 'plain'} run: the reply stores the usage; /metrics counts it`, async (t) => {
    const [inputBefore, outputBefore] = [await tokens('input'), await tokens('output')]
    const session = `usage-${stream}`
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/run/${flowId}${stream ? '?stream=true' : ''}`,
      headers: internalHeaders('tenant-u'),
      payload: { input_value: 'count my tokens please', session_id: session },
    })
    t.equal(res.statusCode, 200, res.body.slice(0, 300))
    const call = model.calls.at(-1)
    if (!call) throw new Error('no model call')
    t.equal(call.stream, stream)
    t.equal(call.includeUsage, stream, 'a streamed call asks for the usage chunk')
    const expected = fakeUsage(call, fakeReply('count my tokens please'))
    const usage = {
      input_tokens: expected.prompt_tokens,
      output_tokens: expected.completion_tokens,
      total_tokens: expected.total_tokens,
    }
    t.ok(usage.input_tokens > 0 && usage.output_tokens > 0)
    const stored = await reply(session)
    t.same(stored?.properties.usage, usage, "the stored reply's properties.usage")
    const sessions = await store.inject({
      url: `/api/v1/monitor/sessions?flow_id=${flowId}`,
      headers: internalHeaders('tenant-u'),
    })
    const summary = (sessions.json() as { session_id: string; usage: unknown }[]).find((s) => s.session_id === session)
    t.same(summary?.usage, usage, 'the session summary sums it (the question carries none)')
    t.equal(await tokens('input'), inputBefore + usage.input_tokens, 'input tokens counted for the tenant and flow')
    t.equal(await tokens('output'), outputBefore + usage.output_tokens, 'output tokens counted')
  })
}

t.test('a flow without a model records no usage', async (t) => {
  const simple = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders('tenant-u'),
    payload: fixture('simple'),
  })
  const id = (simple.json() as { id: string }).id
  await app.inject({
    method: 'POST',
    url: `/api/v1/run/${id}`,
    headers: internalHeaders('tenant-u'),
    payload: { input_value: 'no model', session_id: 'plain' },
  })
  const query = new URLSearchParams({ flow_id: id, session_id: 'plain' })
  const res = await store.inject({ url: `/api/v1/monitor/messages?${query}`, headers: internalHeaders('tenant-u') })
  const messages = res.json() as Message[]
  t.ok(messages.length > 0)
  t.ok(
    messages.every((m) => !('usage' in m.properties)),
    'no usage property',
  )
})
