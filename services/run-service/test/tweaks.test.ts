import t from 'tap'
import {
  applyTweaks,
  builtInComponents,
  InvalidTweakError,
  inputReceivers,
  parseFlow,
  planRun,
  reportedComponents,
  TweakConflictError,
  UnknownOutputComponentError,
} from '../src/index.js'
import { FLOW_ID, fixture, flow, harness, node, run } from './helpers/flows.js'

const graphOf = (json: unknown) => parseFlow(json, builtInComponents).graph

const sample = () =>
  graphOf(
    flow([
      node('chat-1', 'ChatInput', { input_value: 'stored', session_id: '' }, 'Chat Input'),
      node('text-1', 'TextInput', { input_value: 'AI' }, 'Text Input'),
      node('out-1', 'ChatOutput', { session_id: '', sender_name: 'AI' }, 'Chat Output'),
      node('out-2', 'ChatOutput', { session_id: '' }, 'Chat Output'),
      node('text-out', 'TextOutput', {}, 'Text Output'),
      node('prompt', 'Prompt', { template: 'About {topic}' }, 'Prompt'),
    ]),
  )

const asObject = (overrides: ReadonlyMap<string, Readonly<Record<string, unknown>>>) => Object.fromEntries(overrides)

t.test('tweaks by node id, by display name, and top-level fields', async (t) => {
  const graph = sample()
  t.strictSame(asObject(applyTweaks(graph, { 'out-1': { sender_name: 'Bot' } })), { 'out-1': { sender_name: 'Bot' } })
  t.strictSame(
    asObject(applyTweaks(graph, { 'Chat Output': { sender_name: 'Bot' } })),
    { 'out-1': { sender_name: 'Bot' }, 'out-2': { sender_name: 'Bot' } },
    'a display name tweaks every node of that name',
  )
  t.strictSame(
    asObject(applyTweaks(graph, { session_id: 'everywhere' })),
    {
      'chat-1': { session_id: 'everywhere' },
      'out-1': { session_id: 'everywhere' },
      'out-2': { session_id: 'everywhere' },
    },
    'a top-level pair applies to every node that has the field',
  )
  t.strictSame(
    asObject(applyTweaks(graph, { topic: 'cats' })),
    { prompt: { topic: 'cats' } },
    "a Prompt's variables are fields",
  )
})

t.test('precedence for one node: node id > display name > top-level', async (t) => {
  const overrides = applyTweaks(sample(), {
    sender_name: 'top',
    'Chat Output': { sender_name: 'by name' },
    'out-2': { sender_name: 'by id' },
  })
  t.strictSame(asObject(overrides), {
    'chat-1': { sender_name: 'top' },
    'out-1': { sender_name: 'by name' },
    'out-2': { sender_name: 'by id' },
  })
})

t.test('unknown node keys and fields a node does not have are ignored', async (t) => {
  const overrides = applyTweaks(sample(), {
    'no-such-node': { input_value: 'x' },
    'out-1': { no_such_field: 1, code: 'print(1)' },
    no_such_field: 'x',
    'Text Input': { sender_name: 'TextInput has no sender_name' },
  })
  t.strictSame(asObject(overrides), {})
})

t.test('a session_id tweak must be empty or a session ID (422)', async (t) => {
  const graph = sample()
  const tooLong = t.throws(() => applyTweaks(graph, { 'chat-1': { session_id: 'x'.repeat(256) } }))
  t.type(tooLong, InvalidTweakError)
  t.equal((tooLong as InvalidTweakError).statusCode, 422)
  t.type(
    t.throws(() => applyTweaks(graph, { session_id: 42 })),
    InvalidTweakError,
  )
  t.type(
    t.throws(() => applyTweaks(graph, { 'chat-1': { session_id: 'a\u0000b' } })),
    InvalidTweakError,
  )
  t.type(
    t.throws(() => applyTweaks(graph, { 'chat-1': { session_id: 'a\ud800' } })),
    InvalidTweakError,
    'a lone surrogate (the rule of packages/schemas)',
  )
  t.strictSame(asObject(applyTweaks(graph, { 'chat-1': { session_id: '' } })), { 'chat-1': { session_id: '' } })
  t.ok(applyTweaks(graph, { 'chat-1': { session_id: 'x'.repeat(255) } }), '255 code points are fine')
})

t.test('input_type selects which input components receive input_value', async (t) => {
  const graph = sample()
  const ids = (type: 'chat' | 'text' | 'any') => inputReceivers(graph, type).map((n) => n.id)
  t.strictSame(ids('chat'), ['chat-1'])
  t.strictSame(ids('text'), ['text-1'])
  t.strictSame(ids('any'), ['chat-1', 'text-1'])

  const plan = planRun(graph, FLOW_ID, { input_value: 'hello', input_type: 'any' })
  t.equal(plan.overrides.get('chat-1')?.input_value, 'hello')
  t.equal(plan.overrides.get('text-1')?.input_value, 'hello')
  const defaults = planRun(graph, FLOW_ID, { input_value: 'hello', input_type: null })
  t.equal(defaults.overrides.get('chat-1')?.input_value, 'hello', 'null input_type = chat')
  t.notOk(defaults.overrides.get('text-1')?.input_value)
  t.notOk(planRun(graph, FLOW_ID, { input_value: null }).overrides.get('chat-1'), 'null input_value: keep stored')
  t.equal(planRun(graph, FLOW_ID, { input_value: '' }).overrides.get('chat-1')?.input_value, '', 'empty is a value')
})

t.test('a tweak of input_value on a receiving input component is a 400 conflict', async (t) => {
  const graph = sample()
  const byId = t.throws(() =>
    planRun(graph, FLOW_ID, { input_value: 'hello', tweaks: { 'chat-1': { input_value: 'tweaked' } } }),
  )
  t.type(byId, TweakConflictError)
  t.equal((byId as TweakConflictError).statusCode, 400)
  t.equal((byId as TweakConflictError).nodeId, 'chat-1')
  t.type(
    t.throws(() => planRun(graph, FLOW_ID, { input_value: 'hello', tweaks: { input_value: 'top-level' } })),
    TweakConflictError,
    'a top-level input_value tweak reaches the ChatInput too',
  )
  const notReceiving = planRun(graph, FLOW_ID, { input_value: 'hello', tweaks: { 'text-1': { input_value: 'x' } } })
  t.equal(notReceiving.overrides.get('text-1')?.input_value, 'x', 'no conflict on a component not receiving it')
  const noRequestValue = planRun(graph, FLOW_ID, { tweaks: { 'chat-1': { input_value: 'tweaked' } } })
  t.equal(noRequestValue.overrides.get('chat-1')?.input_value, 'tweaked', 'no conflict without a request input_value')
})

t.test('output_type and output_component select the reported components', async (t) => {
  const graph = sample()
  const ids = (type: 'chat' | 'text' | 'any' | 'debug', component = '') =>
    reportedComponents(graph, type, component).map((n) => n.id)
  t.strictSame(ids('chat'), ['out-1', 'out-2'])
  t.strictSame(ids('text'), ['text-out'])
  t.strictSame(ids('any'), ['out-1', 'out-2', 'text-out'])
  t.strictSame(ids('debug'), ['chat-1', 'text-1', 'out-1', 'out-2', 'text-out', 'prompt'])
  t.strictSame(ids('chat', 'text-out'), ['text-out'], 'output_component by id wins over output_type')
  t.strictSame(ids('chat', 'Prompt'), ['prompt'], 'by display name')
  t.strictSame(ids('chat', 'Chat Output'), ['out-1', 'out-2'])
  const unknown = t.throws(() => ids('chat', 'nothing'))
  t.type(unknown, UnknownOutputComponentError)
  t.equal((unknown as UnknownOutputComponentError).statusCode, 400)

  const chatOnly = graphOf(flow([node('in', 'ChatInput'), node('out', 'ChatOutput')]))
  t.strictSame(
    reportedComponents(chatOnly, 'text', '').map((n) => n.id),
    ['out'],
    'if the filter matches none, all output components are reported',
  )
  const noOutputs = graphOf(flow([node('in', 'ChatInput')]))
  t.strictSame(reportedComponents(noOutputs, 'chat', ''), [])
})

t.test('tweaks take effect in a run; an edge value beats a tweak', async (t) => {
  const json = fixture('simple')
  const h = harness()
  const { response } = await run(h, json, {
    input_value: 'hello',
    tweaks: { 'Chat Output': { sender_name: 'Tweaked', sender: 'Robot' }, 'Chat Input': { sender_name: 'Ann' } },
  })
  const [user, reply] = h.store.messages
  t.equal(user?.sender_name, 'Ann')
  t.equal(reply?.sender, 'Robot')
  t.equal(reply?.sender_name, 'AI', "the TextInput's edge into sender_name beats the tweak")
  t.equal(response.outputs[0]?.outputs[0]?.messages[0]?.sender_name, 'AI')
})
