import t from 'tap'
import { renderPrompt } from '../src/engine/components/prompt.js'
import { markdownTable } from '../src/engine/markdown-table.js'
import { ComponentFailedError } from '../src/index.js'
import { edge, FLOW_ID, flow, harness, MODEL_DEFAULTS, node, run } from './helpers/flows.js'

const reply = (response: Awaited<ReturnType<typeof run>>['response']) =>
  response.outputs[0]?.outputs[0]?.outputs.message?.message

t.test('Prompt: {var} placeholders, {{ }} escapes; {{var}} with use_double_brackets', async (t) => {
  const values: Record<string, string> = { name: 'Ada' }
  const variable = (name: string) => values[name] ?? ''
  t.equal(renderPrompt('Hi {name}, {{x}} and {missing}!', false, variable), 'Hi Ada, {x} and !')
  t.equal(renderPrompt('Hi {{ name }}, {single} {{name}}', true, variable), 'Hi Ada, {single} Ada')
  t.equal(renderPrompt('JSON: {"a": 1}', false, variable), 'JSON: {"a": 1}', 'non-identifiers stay literal')

  const h = harness()
  const json = flow(
    [
      node('chat', 'ChatInput'),
      node('prompt', 'Prompt', { template: 'Dear {name}, about {topic}:', topic: 'cats' }),
      node('out', 'ChatOutput', { session_id: '' }),
    ],
    [edge('chat', 'message', 'prompt', 'name'), edge('prompt', 'prompt', 'out', 'input_value')],
  )
  const { response, outcome } = await run(h, json, { input_value: 'Ada', session_id: '' })
  t.equal(reply(response), 'Dear Ada, about cats:', 'variables from edges and from stored values')
  const prompt = outcome.results.find((r) => r.nodeId === 'prompt')?.outputs.prompt
  t.equal(prompt?.kind === 'message' && prompt.message.session_id, '', 'a Prompt carries no session')
  t.equal(h.store.messages.at(-1)?.session_id, FLOW_ID, 'so the ChatOutput falls back to the flow ID')
})

async function seededStore() {
  const h = harness()
  const seed = flow([node('chat', 'ChatInput'), node('out', 'ChatOutput', { input_value: 'reply' })], [])
  for (const text of ['one', 'two', 'three']) await run(h, seed, { input_value: text, session_id: 's' })
  await run(h, seed, { input_value: 'elsewhere', session_id: 'other' })
  return h
}

/** A Memory on its own: reading stores nothing, so the history stays as seeded. */
const memoryFlow = (values: Record<string, unknown>) => flow([node('memory', 'Memory', values)])

t.test('Memory Retrieve: limit, order, sender filters, template; never another session', async (t) => {
  const h = await seededStore()
  const text = async (values: Record<string, unknown>) => {
    const { outcome } = await run(h, memoryFlow(values), { session_id: 's' })
    const output = outcome.results[0]?.outputs.messages_text
    return output?.kind === 'message' ? output.message.text : undefined
  }

  t.equal(
    await text({}),
    'User: one\nAI: reply\nUser: two\nAI: reply\nUser: three\nAI: reply',
    'defaults: 100, Ascending, Machine and User, {sender_name}: {text}',
  )
  t.equal(await text({ n_messages: 2 }), 'User: three\nAI: reply', 'the latest n')
  t.equal(await text({ n_messages: 3, order: 'Descending' }), 'AI: reply\nUser: three\nAI: reply')
  t.equal(await text({ sender_type: 'User' }), 'User: one\nUser: two\nUser: three')
  t.equal(
    await text({ sender_type: 'Machine and User', sender: 'User' }),
    'User: one\nAI: reply\nUser: two\nAI: reply\nUser: three\nAI: reply',
    'sender_type wins when the node has it',
  )
  t.equal(await text({ sender: 'Machine' }), 'AI: reply\nAI: reply\nAI: reply', 'older exports: sender')
  t.equal(await text({ sender_name: 'User', n_messages: 1 }), 'User: three')
  t.equal(await text({ template: '{sender} said "{text}" {unknown}', n_messages: 1 }), 'Machine said "reply" {unknown}')
  const before = h.store.historyCalls.length
  t.equal(await text({ n_messages: 0 }), '', 'n_messages 0 reads nothing')
  t.equal(h.store.historyCalls.length, before)
  t.notOk(
    h.store.historyCalls.some((call) => call.sessionId !== 's'),
    'every read in the resolved session',
  )
})

t.test('Memory dataframe → TypeConverter → a Markdown table in a ChatOutput', async (t) => {
  const h = await seededStore()
  const json = flow(
    [
      node('memory', 'Memory', { n_messages: 2 }),
      node('convert', 'TypeConverterComponent', { output_type: 'Message' }),
      node('out', 'ChatOutput'),
    ],
    [edge('memory', 'dataframe', 'convert', 'input_data'), edge('convert', 'message_output', 'out', 'input_value')],
  )
  const text = String(reply((await run(h, json, { session_id: 's' })).response))
  const lines = text.split('\n')
  t.match(lines[0], /^\| text \| sender \| sender_name \| session_id \| timestamp \| id \| flow_id \|$/)
  t.equal(lines[1], '| --- | --- | --- | --- | --- | --- | --- |')
  t.match(lines[2], /^\| three \| User \| User \| s \| /)
  t.match(lines[3], /^\| reply \| Machine \| AI \| s \| /)
  t.equal(lines.length, 4)
})

t.test('markdownTable: a column per field, escaped cells', async (t) => {
  t.equal(
    markdownTable([{ a: 'x|y', b: 'line\nbreak' }, { c: { n: 1 } }]),
    '| a | b | c |\n| --- | --- | --- |\n| x\\|y | line<br>break |  |\n|  |  | {"n":1} |',
  )
  t.equal(markdownTable([]), '')
})

t.test('TypeConverter: Message → Data → DataFrame; ChatOutput renders each', async (t) => {
  const h = harness()
  const chain = (outputType: string, output: string, values: Record<string, unknown> = {}) =>
    flow(
      [
        node('chat', 'ChatInput'),
        node('convert', 'TypeConverterComponent', { output_type: outputType }),
        node('out', 'ChatOutput', values),
      ],
      [edge('chat', 'message', 'convert', 'input_data'), edge('convert', output, 'out', 'input_value')],
    )
  const data = await run(h, chain('Data', 'data_output', { data_template: '{sender_name} wrote {text}' }), {
    input_value: 'hi',
  })
  t.equal(reply(data.response), 'User wrote hi', 'Data through data_template')
  const jsonFallback = await run(h, chain('Data', 'data_output', { data_template: '{nope}' }), { input_value: 'hi' })
  t.match(reply(jsonFallback.response), /^\{\n {2}"text": "hi",/, 'a template naming a missing key: JSON')
  const frame = await run(h, chain('DataFrame', 'dataframe_output'), { input_value: 'hi' })
  t.match(reply(frame.response), /^\| text \| sender \| sender_name \|.*\n\| --- .*\n\| hi \| User \| User \|/)
  t.match(frame.response.outputs[0]?.outputs[0]?.outputs, { message: { type: 'text' } })

  const bad = await run(h, chain('Banana', 'message_output'), { input_value: 'hi' }).catch((e: unknown) => e)
  t.match(bad, { component: { nodeId: 'convert' }, message: /output_type must be Message, Data or DataFrame/ })
})

t.test('Memory Store and StoreMessage store their message input with their sender fields', async (t) => {
  const h = harness()
  const json = flow(
    [
      node('chat', 'ChatInput', { session_id: 'conv' }),
      node('memory', 'Memory', { mode: 'Store', sender: 'Machine and User', sender_name: '' }),
      node('store', 'StoreMessage', { sender: 'Machine', sender_name: 'Archivist', session_id: 'archive' }),
    ],
    [edge('chat', 'message', 'memory', 'message'), edge('chat', 'message', 'store', 'message')],
  )
  const { outcome } = await run(h, json, { input_value: 'keep me' })
  t.strictSame(
    h.store.session('conv').map((m) => [m.sender, m.sender_name, m.text]),
    [
      ['User', 'User', 'keep me'],
      ['User', 'User', 'keep me'],
    ],
    'Memory Store: the incoming sender ("Machine and User" is no sender), in the inherited session',
  )
  t.strictSame(
    h.store.session('archive').map((m) => [m.sender, m.sender_name, m.text]),
    [['Machine', 'Archivist', 'keep me']],
  )
  const memoryResult = outcome.results.find((r) => r.nodeId === 'memory')
  t.strictSame(Object.keys(memoryResult?.outputs ?? {}), ['stored_messages'])
  t.not(h.store.session('conv')[0]?.id, h.store.session('conv')[1]?.id, 'a new message, not the same row')
})

t.test('models: a non-empty node value wins, configuration fills the rest', async (t) => {
  const modelFlow = (type: string, values: Record<string, unknown>) =>
    flow(
      [node('chat', 'ChatInput'), node('model', type, values), node('out', 'ChatOutput')],
      [edge('chat', 'message', 'model', 'input_value'), edge('model', 'text_output', 'out', 'input_value')],
    )
  const h = harness()
  await run(
    h,
    modelFlow('OpenAIModel', {
      model_name: 'gpt-node',
      openai_api_base: 'http://node.test/v1',
      api_key: 'sk-node',
      temperature: 0.7,
      max_tokens: 50,
      system_message: 'be brief',
    }),
    { input_value: 'q' },
  )
  await run(h, modelFlow('OpenAIModel', { model_name: '', openai_api_base: '', api_key: '', max_tokens: '' }), {
    input_value: 'q',
  })
  await run(
    h,
    modelFlow('LanguageModelComponent', { model: [{ name: 'gpt-listed', provider: 'OpenAI' }], api_key: 'k' }),
    {
      input_value: 'q',
    },
  )
  await run(h, modelFlow('LanguageModelComponent', { model: [] }), { input_value: 'q' })
  t.strictSame(
    h.model.calls.map((c) => [c.model, c.baseUrl, c.apiKey, c.temperature, c.maxTokens, c.system]),
    [
      ['gpt-node', 'http://node.test/v1', 'sk-node', 0.7, 50, 'be brief'],
      [MODEL_DEFAULTS.defaultModel, MODEL_DEFAULTS.baseUrl, MODEL_DEFAULTS.apiKey, 0.1, undefined, undefined],
      ['gpt-listed', MODEL_DEFAULTS.baseUrl, 'k', 0.1, undefined, undefined],
      [MODEL_DEFAULTS.defaultModel, MODEL_DEFAULTS.baseUrl, MODEL_DEFAULTS.apiKey, 0.1, undefined, undefined],
    ],
  )

  const none = harness()
  const failure = await run(
    none,
    modelFlow('LanguageModelComponent', { model: [] }),
    { input_value: 'q' },
    {
      modelDefaults: { baseUrl: 'http://x.test' },
    },
  ).catch((e: unknown) => e)
  t.type(failure, ComponentFailedError)
  t.equal((failure as ComponentFailedError).statusCode, 500, 'not configured is not a provider failure')
  t.match((failure as ComponentFailedError).reason, /no model configured/)
  t.equal(none.model.calls.length, 0)
})
