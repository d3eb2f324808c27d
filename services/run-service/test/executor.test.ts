import t from 'tap'
import {
  builtInComponents,
  type ComponentContext,
  type ComponentDefinition,
  ComponentFailedError,
  type ComponentInputs,
  type ComponentOutputs,
  createRegistry,
  executeRun,
  ModelProviderError,
  parseFlow,
  planRun,
  RunAbortedError,
} from '../src/index.js'
import {
  edge,
  FLOW_ID,
  fixture,
  flow,
  harness,
  MODEL_DEFAULTS,
  node,
  nodeIdOfType,
  run,
  setValue,
} from './helpers/flows.js'

type Behaviour = (ctx: ComponentContext, inputs: ComponentInputs) => Promise<ComponentOutputs>

/** A test component: runs `behaviour`, passes `input_value` through as `out`. */
function probe(type: string, behaviour: Behaviour): ComponentDefinition {
  return {
    type,
    inputs: ['input_value', 'a', 'b'],
    outputs: ['out'],
    emitsMessages: false,
    readsMessages: false,
    mainInput: 'input_value',
    run: behaviour,
  }
}

const withProbes = (...probes: ComponentDefinition[]) => createRegistry([...builtInComponents.values(), ...probes])

const passThrough = (inputs: ComponentInputs): ComponentOutputs => ({
  out: inputs.input_value ?? { kind: 'raw', value: '' },
})

t.test('input components run first, then the rest, in dependency order', async (t) => {
  const seen: string[] = []
  const registry = withProbes(
    probe('Probe', async (ctx, inputs) => {
      seen.push(ctx.node.id)
      return passThrough(inputs)
    }),
  )
  const json = flow(
    [
      node('early', 'Probe'),
      node('text', 'TextInput', { input_value: 'x' }),
      node('late', 'Probe'),
      node('chat', 'ChatInput', { input_value: 'hi' }),
    ],
    [edge('early', 'out', 'late', 'input_value')],
  )
  const { outcome } = await run(harness(), json, {}, { registry })
  t.strictSame(
    outcome.results.map((r) => r.nodeId),
    ['text', 'chat', 'early', 'late'],
  )
})

t.test('a Memory listed before the ChatInput sees the user message of the same run', async (t) => {
  const h = harness()
  h.store.storeDelay = 5
  const json = flow(
    [
      node('memory', 'Memory', { mode: 'Retrieve' }),
      node('out', 'ChatOutput'),
      node('chat', 'ChatInput', { input_value: '' }),
    ],
    [edge('memory', 'messages_text', 'out', 'input_value')],
  )
  await run(h, json, { input_value: 'first', session_id: 's' })
  const { response } = await run(h, json, { input_value: 'second', session_id: 's' })
  t.equal(response.outputs[0]?.outputs[0]?.outputs.message?.message, 'User: first\nAI: User: first\nUser: second')
})

t.test('independent branches run concurrently; a join waits for all its inputs', async (t) => {
  let started = 0
  let release: () => void = () => {}
  const bothStarted = new Promise<void>((resolve) => {
    release = resolve
  })
  const registry = withProbes(
    probe('Branch', async (_ctx, inputs) => {
      started += 1
      if (started === 2) release()
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error('branches ran one after another')), 1000),
      )
      await Promise.race([bothStarted, timeout])
      return passThrough(inputs)
    }),
    probe('Join', async (_ctx, inputs) => ({
      out: { kind: 'raw', value: `${inputs.a?.kind}+${inputs.b?.kind}` },
    })),
  )
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'go' }),
      node('b1', 'Branch'),
      node('b2', 'Branch'),
      node('join', 'Join'),
    ],
    [
      edge('chat', 'message', 'b1', 'input_value'),
      edge('chat', 'message', 'b2', 'input_value'),
      edge('b1', 'out', 'join', 'a'),
      edge('b2', 'out', 'join', 'b'),
    ],
  )
  const { outcome } = await run(harness(), json, {}, { registry })
  t.equal(started, 2)
  t.strictSame(outcome.results.at(-1)?.outputs.out, { kind: 'raw', value: 'message+message' })
})

t.test('an edge value overrides the template value', async (t) => {
  const h = harness()
  const json = flow(
    [node('text', 'TextInput', { input_value: 'from the edge' }), node('out', 'ChatOutput', { input_value: 'stored' })],
    [edge('text', 'text', 'out', 'input_value')],
  )
  await run(h, json)
  t.strictSame(
    h.store.messages.map((m) => m.text),
    ['from the edge'],
  )
})

t.test('should_store_message false: emitted and reported, not stored', async (t) => {
  const h = harness()
  const json = flow(
    [node('chat', 'ChatInput', { should_store_message: false }), node('out', 'ChatOutput')],
    [edge('chat', 'message', 'out', 'input_value')],
  )
  const { outcome, events } = await run(h, json, { input_value: 'quiet' })
  t.strictSame(
    h.store.messages.map((m) => m.sender),
    ['Machine'],
  )
  t.equal(outcome.results[0]?.messages[0]?.text, 'quiet')
  t.strictSame(
    events.map((e) => e.event),
    ['add_message'],
  )
})

t.test('a failing component: error message in its session, run fails naming it (500)', async (t) => {
  const h = harness()
  const registry = withProbes(
    probe('Boom', async () => {
      throw new Error('kaput')
    }),
  )
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'hi', session_id: 'in-s' }),
      node('boom', 'Boom', {}, 'Boom Box'),
      node('out', 'ChatOutput', { session_id: 'out-s' }),
    ],
    [edge('chat', 'message', 'boom', 'input_value'), edge('boom', 'out', 'out', 'input_value')],
  )
  const events: string[] = []
  const failure = await run(h, json, {}, { registry, onEvent: (e) => events.push(e.event) }).catch((e: unknown) => e)
  t.type(failure, ComponentFailedError)
  const failed = failure as ComponentFailedError
  t.equal(failed.statusCode, 500)
  t.equal(failed.providerFailed, false)
  t.strictSame(failed.component, { nodeId: 'boom', displayName: 'Boom Box', componentType: 'Boom' })
  t.equal(failed.message, 'Error running component "Boom Box" (boom): kaput')
  t.match(failed.errorMessage, { session_id: 'in-s', category: 'error', error: true, sender_name: 'Boom Box' })
  const errors = h.store.messages.filter((m) => m.error)
  t.equal(errors.length, 1, 'one error message')
  t.ok(
    errors.every((m) => m.session_id === 'in-s' && m.category === 'error' && /Boom Box.*kaput/.test(m.text)),
    "stored in the failing component's (inherited) session, naming it and the reason",
  )
  t.strictSame(h.store.session('out-s'), [], 'the ChatOutput never ran')
  t.strictSame(events, ['add_message', 'add_message'], 'the user message, then the error message')
})

t.test('a model provider failure is a 502; the error message never enters a later history', async (t) => {
  const h = harness()
  const json = fixture('memory')
  h.model.reply = () => {
    throw new ModelProviderError('upstream 503', false)
  }
  const failure = await run(h, json, { input_value: 'hello', session_id: 's' }).catch((e: unknown) => e)
  t.type(failure, ComponentFailedError)
  t.equal((failure as ComponentFailedError).statusCode, 502)
  t.equal((failure as ComponentFailedError).providerFailed, true)
  t.match((failure as ComponentFailedError).message, /Language Model.*upstream 503/)
  t.strictSame(
    h.store.session('s').map((m) => [m.category, m.error]),
    [
      ['message', false],
      ['error', true],
    ],
  )

  h.model.reply = (request) => `ok: ${request.input}`
  await run(h, json, { input_value: 'again', session_id: 's' })
  const system = h.model.calls.at(-1)?.system ?? ''
  t.match(system, 'User: hello\nUser: again')
  t.notMatch(system, 'upstream 503', 'the error message is not part of the history')

  h.model.reply = () => {
    throw new ModelProviderError('took too long', true)
  }
  const timeout = await run(h, json, { input_value: 'x', session_id: 's' }).catch((e: unknown) => e)
  t.equal((timeout as ComponentFailedError).statusCode, 502, 'a timeout too')
})

t.test('the error message goes to the session of the failing component, not the others', async (t) => {
  const h = harness()
  const json = fixture('basic')
  setValue(json, nodeIdOfType(json, 'ChatInput'), 'session_id', 'in-s')
  setValue(json, nodeIdOfType(json, 'ChatOutput'), 'session_id', 'out-s')
  h.model.reply = () => {
    throw new ModelProviderError('nope')
  }
  await t.rejects(run(h, json, { input_value: 'q' }), ComponentFailedError)
  t.strictSame(
    h.store.session('in-s').map((m) => m.category),
    ['message', 'error'],
    'the model inherits the ChatInput session',
  )
  t.strictSame(h.store.session('out-s'), [])
})

t.test('after a failure the other branches are stopped and store nothing', async (t) => {
  const h = harness()
  let slowSawAbort = false
  const registry = withProbes(
    probe('Fail', async () => {
      throw new Error('first failure')
    }),
    probe('Slow', async (ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }))
      slowSawAbort = true
      throw new Error('stopped')
    }),
  )
  const json = flow(
    [node('chat', 'ChatInput', { input_value: 'x' }), node('slow', 'Slow'), node('fail', 'Fail')],
    [edge('chat', 'message', 'slow', 'input_value'), edge('chat', 'message', 'fail', 'input_value')],
  )
  const failure = await run(h, json, {}, { registry }).catch((e: unknown) => e)
  t.ok(slowSawAbort, 'the slow branch was signalled')
  t.match(failure, { component: { nodeId: 'fail' } })
  t.equal(h.store.messages.filter((m) => m.error).length, 1, 'one error message')
})

t.test('a component output that was not produced fails that component', async (t) => {
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'x' }),
      node('convert', 'TypeConverterComponent', { output_type: 'Message' }, 'Type Convert'),
      node('out', 'ChatOutput'),
    ],
    [edge('chat', 'message', 'convert', 'input_data'), edge('convert', 'data_output', 'out', 'input_value')],
  )
  const failure = await run(harness(), json).catch((e: unknown) => e)
  t.match(failure, { component: { nodeId: 'convert' }, message: /data_output was not produced/ })
})

t.test('the message port failing: the run fails; the error message could not be stored either', async (t) => {
  const h = harness()
  const unavailable = new Error('message-store unavailable')
  h.store.store = async () => {
    throw unavailable
  }
  const failure = (await run(h, fixture('simple'), { input_value: 'x' }).catch(
    (e: unknown) => e,
  )) as ComponentFailedError
  t.type(failure, ComponentFailedError)
  t.equal(failure.cause, unavailable, 'the cause lets the route answer 503')
  t.equal(failure.errorMessage, undefined)
  t.equal(failure.errorMessageFailure, unavailable)
})

t.test('abort stops the run between components and aborts port calls', async (t) => {
  t.test('aborted during a component: nothing after it runs, nothing is stored for it', async (t) => {
    const h = harness()
    const controller = new AbortController()
    const ran: string[] = []
    const registry = withProbes(
      probe('Probe', async (ctx, inputs) => {
        ran.push(ctx.node.id)
        if (ctx.node.id === 'first') controller.abort(new Error('client went away'))
        return passThrough(inputs)
      }),
    )
    const json = flow(
      [node('chat', 'ChatInput', { input_value: 'x' }), node('first', 'Probe'), node('second', 'Probe')],
      [edge('chat', 'message', 'first', 'input_value'), edge('first', 'out', 'second', 'input_value')],
    )
    const failure = await run(h, json, {}, { registry, signal: controller.signal }).catch((e: unknown) => e)
    t.type(failure, RunAbortedError)
    t.strictSame(ran, ['first'])
    t.equal(h.store.messages.filter((m) => m.error).length, 0, 'no error message for a cancellation')
  })

  t.test('aborted during a model call: the port sees the signal', async (t) => {
    const h = harness()
    const controller = new AbortController()
    h.model.reply = (_request, signal) =>
      new Promise((_, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
        setTimeout(() => controller.abort(new Error('cancelled')), 5)
      })
    const failure = await run(h, fixture('basic'), { input_value: 'x' }, { signal: controller.signal }).catch(
      (e: unknown) => e,
    )
    t.type(failure, RunAbortedError)
    t.strictSame(
      h.store.messages.map((m) => m.sender),
      ['User'],
      'only the user message; no reply, no error message',
    )
  })

  t.test('already aborted: nothing runs', async (t) => {
    const h = harness()
    const failure = await run(h, fixture('simple'), { input_value: 'x' }, { signal: AbortSignal.abort() }).catch(
      (e: unknown) => e,
    )
    t.type(failure, RunAbortedError)
    t.strictSame(h.store.messages, [])
  })
})

t.test(
  'streaming: token events carry the id the reply is stored under; add_message follows the last token',
  async (t) => {
    const h = harness()
    h.model.reply = () => 'one two three'
    const { events, response } = await run(h, fixture('basic'), { input_value: 'q' }, { stream: true })
    t.equal(h.model.calls[0]?.stream, true, '?stream=true turns streaming on')
    const tokens = events.flatMap((e) => (e.event === 'token' ? [e.data] : []))
    t.equal(tokens.map((token) => token.chunk).join(''), 'one two three')
    const reply = h.store.messages.find((m) => m.sender === 'Machine')
    t.ok(reply && tokens.every((token) => token.id === reply.id), 'every token carries the stored reply id')
    t.strictSame(
      events.map((e) => (e.event === 'add_message' ? `add_message:${e.data.sender}` : e.event)),
      ['add_message:User', 'token', 'token', 'token', 'add_message:Machine'],
    )
    t.equal(h.store.messages.filter((m) => m.sender === 'Machine').length, 1, 'the reply is stored once')
    t.equal(response.outputs[0]?.outputs[0]?.outputs.message?.message, 'one two three')

    const quiet = harness()
    const plain = await run(quiet, fixture('basic'), { input_value: 'q' })
    t.equal(quiet.model.calls[0]?.stream, false)
    t.notOk(
      plain.events.some((e) => e.event === 'token'),
      'no tokens without streaming',
    )

    const byNode = harness()
    const json = fixture('basic')
    setValue(json, nodeIdOfType(json, 'LanguageModelComponent'), 'stream', true)
    const streamed = await run(byNode, json, { input_value: 'q' })
    t.equal(byNode.model.calls[0]?.stream, true, "the node's stream field turns it on too")
    t.ok(streamed.events.some((e) => e.event === 'token'))
  },
)

t.test('a model not feeding a ChatOutput does not stream', async (t) => {
  const h = harness()
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'x' }),
      node('model', 'OpenAIModel', { stream: true }),
      node('text', 'TextOutput'),
    ],
    [edge('chat', 'message', 'model', 'input_value'), edge('model', 'text_output', 'text', 'input_value')],
  )
  const { events } = await run(h, json, {}, { stream: true })
  t.equal(h.model.calls[0]?.stream, false)
  t.notOk(events.some((e) => e.event === 'token'))
})

t.test('a graph with problems is refused before anything runs', async (t) => {
  const h = harness()
  const { graph } = parseFlow(
    flow([node('chat', 'ChatInput', { input_value: 'x' }), node('odd', 'Unknown')]),
    builtInComponents,
  )
  await t.rejects(
    executeRun(planRun(graph, FLOW_ID, {}), { messages: h.store, model: h.model, modelDefaults: MODEL_DEFAULTS }),
    TypeError,
  )
  t.strictSame(h.store.messages, [])
})
