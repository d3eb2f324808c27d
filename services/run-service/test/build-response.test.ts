import { FormatRegistry } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import t from 'tap'
import { RunResponse } from '../src/index.js'
import { fixture, harness, run } from './helpers/flows.js'

FormatRegistry.Set('uuid', (value) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value))

t.test('the §3 response body of the simple flow, field by field', async (t) => {
  const h = harness()
  const json = fixture('simple')
  const { response } = await run(h, json, { input_value: 'Hello', session_id: 'conv' }, { flowId: json.id })
  t.ok(Value.Check(RunResponse, response), 'matches the RunResponse schema')
  t.strictSame(Object.keys(response), ['session_id', 'outputs'])
  t.equal(response.session_id, 'conv')
  t.equal(response.outputs.length, 1)
  t.strictSame(response.outputs[0]?.inputs, { input_value: 'Hello' })
  t.equal(response.outputs[0]?.outputs.length, 1, 'output_type chat: the ChatOutput only')

  const result = response.outputs[0]?.outputs[0]
  const stored = h.store.messages.find((m) => m.sender === 'Machine')
  t.strictSame(Object.keys(result ?? {}), [
    'component_id',
    'component_display_name',
    'results',
    'outputs',
    'artifacts',
    'logs',
    'messages',
    'timedelta',
    'duration',
    'used_frozen_result',
  ])
  t.equal(result?.component_id, 'ChatOutput-J6aor')
  t.equal(result?.component_display_name, 'Chat Output')
  t.strictSame(result?.results, { message: stored }, 'results.message is the stored Message')
  t.strictSame(Object.keys(result?.results.message ?? {}).sort(), [
    'category',
    'content_blocks',
    'context_id',
    'edit',
    'error',
    'files',
    'flow_id',
    'id',
    'properties',
    'sender',
    'sender_name',
    'session_id',
    'text',
    'timestamp',
  ])
  t.strictSame(result?.outputs, { message: { message: 'Hello', type: 'text' } })
  t.strictSame(result?.artifacts, { message: 'Hello', sender: 'Machine', sender_name: 'AI', files: [], type: 'text' })
  t.strictSame(result?.logs, { message: [] })
  t.strictSame(result?.messages, [
    {
      message: 'Hello',
      sender: 'Machine',
      sender_name: 'AI',
      session_id: 'conv',
      stream_url: null,
      component_id: 'ChatOutput-J6aor',
      files: [],
      type: 'text',
    },
  ])
  t.equal(result?.timedelta, null)
  t.equal(result?.duration, null)
  t.equal(result?.used_frozen_result, false)

  // The two well-known client paths.
  t.equal(response.outputs[0]?.outputs[0]?.outputs.message?.message, 'Hello')
  t.equal((response.outputs[0]?.outputs[0]?.results.message as { text?: string } | undefined)?.text, 'Hello')
})

t.test('reported components follow output_type / output_component, in execution order', async (t) => {
  const json = fixture('memory')
  const debug = await run(harness(), json, { input_value: 'x', output_type: 'debug' })
  t.strictSame(
    debug.response.outputs[0]?.outputs.map((r) => r.component_display_name),
    ['Chat Input', 'Message History', 'Prompt', 'Language Model', 'Chat Output'],
  )
  t.ok(Value.Check(RunResponse, debug.response))
  const memory = debug.response.outputs[0]?.outputs[1]
  t.match(memory?.outputs, { messages_text: { message: 'User: x', type: 'text' }, dataframe: { type: 'object' } })
  t.match(memory?.results.dataframe, [{ text: 'x', sender_name: 'User' }], 'a DataFrame result is its rows')
  t.strictSame(memory?.messages, [], 'a history read emits no message')

  const byName = await run(harness(), json, { input_value: 'x', output_component: 'Prompt' })
  t.strictSame(
    byName.response.outputs[0]?.outputs.map((r) => r.component_id),
    ['Prompt-9wc4j'],
  )
  const text = await run(harness(), json, { input_value: 'x', output_type: 'text' })
  t.strictSame(
    text.response.outputs[0]?.outputs.map((r) => r.component_id),
    ['ChatOutput-2ljRT'],
    'no text output: every output component',
  )
  const noInput = await run(harness(), json, {})
  t.strictSame(noInput.response.outputs[0]?.inputs, { input_value: '' }, 'input_value null → ""')
})
