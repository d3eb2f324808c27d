import t from 'tap'
import {
  FIXTURES,
  fixture,
  type Harness,
  harness,
  MODEL_DEFAULTS,
  nodeIdOfType,
  run,
  setValue,
} from './helpers/flows.js'

const chatText = (response: Awaited<ReturnType<typeof run>>['response']) => {
  const result = response.outputs[0]?.outputs[0]
  return { output: result?.outputs.message?.message, result: (result?.results.message as { text?: string })?.text }
}

t.test('every fixture runs end to end with the fake ports', async (t) => {
  for (const name of Object.keys(FIXTURES) as (keyof typeof FIXTURES)[]) {
    const h = harness()
    const json = fixture(name)
    const { response } = await run(h, json, { input_value: 'ping' }, { flowId: json.id })
    t.equal(response.session_id, json.id, `${name}: no session_id → the flow ID`)
    t.equal(response.outputs[0]?.outputs.length, 1, `${name}: one ChatOutput reported`)
    t.ok(
      h.store.messages.every((m) => m.session_id === json.id && m.flow_id === json.id),
      `${name}: messages stored in the flow-ID session`,
    )
  }
})

t.test('simple API test: ChatInput → ChatOutput, TextInput → sender_name', async (t) => {
  const h = harness()
  const json = fixture('simple')
  const { response } = await run(h, json, { input_value: 'Hello there' }, { flowId: json.id })
  t.strictSame(chatText(response), { output: 'Hello there', result: 'Hello there' })
  t.strictSame(
    h.store.messages.map((m) => [m.sender, m.sender_name, m.text]),
    [
      ['User', 'User', 'Hello there'],
      ['Machine', 'AI', 'Hello there'],
    ],
  )
  t.equal(h.model.calls.length, 0, 'no model')
})

t.test('basic prompting: the Prompt is the system message; model settings come from configuration', async (t) => {
  const h = harness()
  const json = fixture('basic')
  h.model.reply = (request) => `Great question about "${request.input}"!`
  const { response } = await run(h, json, { input_value: 'What is RAG?' }, { flowId: json.id })
  t.equal(h.model.calls.length, 1)
  t.match(h.model.calls[0], {
    model: MODEL_DEFAULTS.defaultModel,
    baseUrl: MODEL_DEFAULTS.baseUrl,
    apiKey: MODEL_DEFAULTS.apiKey,
    input: 'What is RAG?',
    system: /^Answer the user as if you were a GenAI expert/,
    temperature: 0.1,
    stream: false,
  })
  t.strictSame(chatText(response), {
    output: 'Great question about "What is RAG?"!',
    result: 'Great question about "What is RAG?"!',
  })

  const stored = harness()
  await run(stored, json, {}, { flowId: json.id })
  t.equal(stored.model.calls[0]?.input, 'Hello', 'without input_value the stored value is used')
})

/** One turn of the Memory Chatbot; the model answers `<input> -> answer` and we keep its system prompt. */
async function turn(h: Harness, text: string, sessionId?: string) {
  const json = fixture('memory')
  const result = await run(
    h,
    json,
    { input_value: text, ...(sessionId ? { session_id: sessionId } : {}) },
    { flowId: json.id },
  )
  return { ...result, system: h.model.calls.at(-1)?.system ?? '' }
}

t.test('memory chatbot: 3 turns in two interleaved sessions keep separate histories', async (t) => {
  const h = harness()
  h.model.reply = (request) => `${request.input} -> answer`
  const systems: Record<string, string> = {}
  for (const n of [1, 2, 3]) {
    for (const session of ['alpha', 'beta']) {
      const { response, system } = await turn(h, `${session} ${n}`, session)
      systems[`${session} ${n}`] = system
      t.equal(response.session_id, session)
      t.equal(chatText(response).output, `${session} ${n} -> answer`)
    }
  }
  for (const session of ['alpha', 'beta']) {
    t.strictSame(
      h.store.session(session).map((m) => `${m.sender_name}: ${m.text}`),
      [1, 2, 3].flatMap((n) => [`User: ${session} ${n}`, `AI: ${session} ${n} -> answer`]),
      `${session}: its own six messages, in order`,
    )
  }
  const history = systems['alpha 3'] ?? ''
  t.match(
    history,
    'User: alpha 1\nAI: alpha 1 -> answer\nUser: alpha 2\nAI: alpha 2 -> answer\nUser: alpha 3',
    "turn 3 sees its session's history, including this run's user message",
  )
  t.notMatch(history, 'beta', 'and nothing of the other session')
  t.match(systems['beta 1'], 'History: \n\nUser: beta 1\n', 'the first turn sees only its own message')
})

t.test('memory chatbot without session_id: the flow ID is the session', async (t) => {
  const h = harness()
  const first = await turn(h, 'my name is Ada')
  const second = await turn(h, 'what is my name?')
  const flowId = fixture('memory').id
  t.equal(first.response.session_id, flowId)
  t.equal(second.response.session_id, flowId)
  t.ok(
    h.store.historyCalls.every((call) => call.sessionId === flowId && call.flowId === flowId),
    'history read in the flow-ID session',
  )
  t.match(second.system, 'User: my name is Ada\nAI: echo: my name is Ada\nUser: what is my name?')
  t.equal(h.store.session(flowId as string).length, 4)
})

t.test('memory chatbot: a session set in the stored flow, and one set by a tweak', async (t) => {
  const stored = fixture('memory')
  for (const type of ['ChatInput', 'Memory', 'ChatOutput'])
    setValue(stored, nodeIdOfType(stored, type), 'session_id', 'stored-conv')

  t.test('stored session: used when the request has none', async (t) => {
    const h = harness()
    await run(h, stored, { input_value: 'one' }, { flowId: stored.id })
    const { response } = await run(h, stored, { input_value: 'two' }, { flowId: stored.id })
    t.equal(response.session_id, 'stored-conv')
    t.strictSame(
      h.store.session('stored-conv').map((m) => m.text),
      ['one', 'echo: one', 'two', 'echo: two'],
    )
    t.strictSame(
      h.store.historyCalls.map((call) => call.sessionId),
      ['stored-conv', 'stored-conv'],
    )
  })

  t.test('stored session: overridden by the request', async (t) => {
    const h = harness()
    const { response } = await run(h, stored, { input_value: 'one', session_id: 'req' }, { flowId: stored.id })
    t.equal(response.session_id, 'req')
    t.strictSame(h.store.session('stored-conv'), [])
    t.equal(h.store.session('req').length, 2)
    t.strictSame(
      h.store.historyCalls.map((call) => call.sessionId),
      ['req'],
    )
  })

  const plain = fixture('memory')
  t.test('tweaked session: used when the request has none', async (t) => {
    const h = harness()
    await run(h, plain, { input_value: 'one', tweaks: { session_id: 'tweak-conv' } }, { flowId: plain.id })
    const { response } = await run(
      h,
      plain,
      { input_value: 'two', tweaks: { session_id: 'tweak-conv' } },
      { flowId: plain.id },
    )
    t.equal(response.session_id, 'tweak-conv')
    t.strictSame(
      h.store.session('tweak-conv').map((m) => m.text),
      ['one', 'echo: one', 'two', 'echo: two'],
    )
    t.match(h.model.calls[1]?.system, 'User: one\nAI: echo: one\nUser: two')
  })

  t.test('tweaked session beats the stored one', async (t) => {
    const h = harness()
    const { response } = await run(
      h,
      stored,
      { input_value: 'one', tweaks: { session_id: 'tweak-conv' } },
      { flowId: stored.id },
    )
    t.equal(response.session_id, 'tweak-conv')
    t.strictSame(h.store.session('stored-conv'), [])
  })

  t.test('tweaked session: overridden by the request', async (t) => {
    const h = harness()
    const { response } = await run(
      h,
      plain,
      { input_value: 'one', session_id: 'req', tweaks: { session_id: 'tweak-conv' } },
      { flowId: plain.id },
    )
    t.equal(response.session_id, 'req')
    t.strictSame(h.store.session('tweak-conv'), [])
    t.equal(h.store.session('req').length, 2)
  })
})
