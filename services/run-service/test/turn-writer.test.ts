// The run's message writes (src/engine/turn-writer.ts, used by the executor): a non-streamed run stores the
// messages it emits between two waits in one write (MessagePort.storeMany), before every history read and
// model call, before a component that may read what the store assigns, on failure and at the end; its
// response carries the stored messages. Streamed runs store each message as it is emitted.
import { readFileSync } from 'node:fs'
import type { Message, MessageInput } from '@session-runtime/schemas'
import t from 'tap'
import {
  builtInComponents,
  type ComponentDefinition,
  ComponentFailedError,
  createRegistry,
  type HistoryRequest,
  PartialWriteError,
  type PortOptions,
  RunAbortedError,
} from '../src/index.js'
import { FakeMessageStore, FakeModel } from './helpers/fakes.js'
import { edge, type FlowJson, fixture, flow, type Harness, node, run } from './helpers/flows.js'

/** A message-store with a batch write; `calls` tells the writes and reads in order. */
class BatchingStore extends FakeMessageStore {
  readonly calls: string[] = []
  /** Makes the next batch writes fail: `error` thrown as it is, or a PartialWriteError after `storedFirst`. */
  failBatch: { error: unknown; storedFirst?: number } | undefined

  override async store(input: MessageInput, options: PortOptions): Promise<Message> {
    this.calls.push('store')
    return super.store(input, options)
  }

  async storeMany(inputs: readonly MessageInput[], options: PortOptions): Promise<Message[]> {
    this.calls.push(`storeMany:${inputs.length}`)
    options.signal.throwIfAborted()
    const stored: Message[] = []
    for (const [index, input] of inputs.entries()) {
      if (this.failBatch && index === (this.failBatch.storedFirst ?? 0)) {
        const { error, storedFirst } = this.failBatch
        throw storedFirst === undefined ? error : new PartialWriteError(stored, { cause: error })
      }
      stored.push(await super.store(input, options))
    }
    return stored
  }

  override async history(query: HistoryRequest, options: PortOptions): Promise<Message[]> {
    this.calls.push('history')
    return super.history(query, options)
  }
}

/** A store that also writes and reads in one exchange (MessagePort.storeThenHistory). */
class WriteThenReadStore extends BatchingStore {
  /** Makes the next combined exchanges fail with this error (nothing stored). */
  failCombined: unknown

  async storeThenHistory(
    inputs: readonly MessageInput[],
    query: HistoryRequest,
    options: PortOptions,
  ): Promise<{ stored: Message[]; history: Message[] }> {
    this.calls.push(`storeThenHistory:${inputs.length}`)
    if (this.failCombined) throw this.failCombined
    const stored: Message[] = []
    for (const input of inputs) stored.push(await FakeMessageStore.prototype.store.call(this, input, options))
    return { stored, history: await FakeMessageStore.prototype.history.call(this, query, options) }
  }
}

function batching(): Harness & { store: BatchingStore } {
  return { store: new BatchingStore(), model: new FakeModel() }
}

const memoryEcho = (): FlowJson =>
  JSON.parse(readFileSync(new URL('../examples/memory-echo.json', import.meta.url), 'utf8')) as FlowJson

/** A test component reading only message content: passes `input_value` on, or throws `fails`. */
function contentProbe(type: string, fails?: Error): ComponentDefinition {
  return {
    type,
    inputs: ['input_value'],
    outputs: ['out'],
    emitsMessages: false,
    readsMessages: false,
    readsMessageContentOnly: true,
    mainInput: 'input_value',
    async run(ctx, inputs) {
      if (fails) throw fails
      if (type === 'Waiter') {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
        throw ctx.signal.reason
      }
      return { out: inputs.input_value ?? { kind: 'raw', value: '' } }
    },
  }
}

const registryWith = (...extra: ComponentDefinition[]) => createRegistry([...builtInComponents.values(), ...extra])

t.test('an echo run stores its two messages in one write; the response carries the stored ones', async (t) => {
  const h = batching()
  const { response, outcome, events } = await run(h, fixture('simple'), { input_value: 'hi', session_id: 's' })
  t.strictSame(h.store.calls, ['storeMany:2'], 'one write for the turn')
  t.strictSame(
    h.store.messages.map((m) => [m.sender, m.text, m.session_id]),
    [
      ['User', 'hi', 's'],
      ['Machine', 'hi', 's'],
    ],
  )
  const [user, reply] = h.store.messages
  t.strictSame(response.outputs[0]?.outputs[0]?.results.message, reply, 'the stored reply, timestamp included')
  t.strictSame(
    outcome.results.flatMap((result) => result.messages),
    [user, reply],
    'every result carries the stored messages',
  )
  t.strictSame(
    outcome.results.find((result) => result.componentType === 'ChatInput')?.outputs.message,
    { kind: 'message', message: user },
    "the ChatInput's output too",
  )
  t.strictSame(
    events.map((e) => e.data),
    [user, reply],
    'add_message for each, once stored, in order',
  )
})

t.test('a history read comes after the messages emitted before it are stored', async (t) => {
  const h = batching()
  const first = await run(h, memoryEcho(), { input_value: 'first', session_id: 's' })
  t.strictSame(h.store.calls, ['store', 'history', 'store'], 'the user message before the read, the reply after')
  t.match(first.response.outputs[0]?.outputs[0]?.outputs.message?.message, /so far:\n- first$/)

  const copies = batching()
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'hello' }),
      node('copy', 'StoreMessage', { sender_name: 'Copy' }),
      node('memory', 'Memory', { template: '{sender_name}: {text}' }),
      node('out', 'ChatOutput'),
    ],
    [
      edge('chat', 'message', 'copy', 'message'),
      edge('copy', 'stored_messages', 'memory', 'message'),
      edge('memory', 'messages_text', 'out', 'input_value'),
    ],
  )
  const { response } = await run(copies, json, { session_id: 's' })
  t.strictSame(copies.store.calls, ['storeMany:2', 'history', 'store'])
  t.equal(response.outputs[0]?.outputs[0]?.outputs.message?.message, 'User: hello\nCopy: hello', 'the read saw both')
})

t.test('a port that writes and reads in one exchange: a history read after emitted messages is one call', async (t) => {
  const h = { store: new WriteThenReadStore(), model: new FakeModel() }
  const first = await run(h, memoryEcho(), { input_value: 'first', session_id: 's' })
  t.strictSame(h.store.calls, ['storeThenHistory:1', 'store'], 'the user message and the read together, then the reply')
  t.match(first.response.outputs[0]?.outputs[0]?.outputs.message?.message, /so far:\n- first$/, 'the read saw it')
  const second = await run(h, memoryEcho(), { input_value: 'second', session_id: 's' })
  t.match(second.response.outputs[0]?.outputs[0]?.outputs.message?.message, /so far:\n- first\n- second$/)

  const plain = { store: new WriteThenReadStore(), model: new FakeModel() }
  const json = flow(
    [node('memory', 'Memory', { template: '{text}' }), node('out', 'ChatOutput')],
    [edge('memory', 'messages_text', 'out', 'input_value')],
  )
  await run(plain, json, { session_id: 's' })
  t.strictSame(plain.store.calls, ['history', 'store'], 'nothing emitted before the read: a plain read')

  const failing = { store: new WriteThenReadStore(), model: new FakeModel() }
  failing.store.failCombined = new Error('store down')
  const failed = await run(failing, memoryEcho(), { input_value: 'lost', session_id: 's' }).catch((e: unknown) => e)
  t.ok(failed instanceof ComponentFailedError, 'a failed exchange fails the run')
  t.equal(
    (failed as ComponentFailedError).component.componentType,
    'ChatInput',
    'at the component whose message was not stored',
  )
  t.notOk(failing.store.calls.includes('history'), 'and nothing is read after it')
})

t.test('messages reach the store in the order emitted, with increasing timestamps', async (t) => {
  const h = batching()
  const json = flow(
    [
      node('out', 'ChatOutput'),
      node('copy', 'StoreMessage', { sender_name: 'Copy' }),
      node('chat', 'ChatInput', { input_value: 'one' }),
    ],
    [edge('chat', 'message', 'copy', 'message'), edge('copy', 'stored_messages', 'out', 'input_value')],
  )
  const { outcome } = await run(h, json, { session_id: 's' })
  t.strictSame(h.store.calls, ['storeMany:3'])
  t.strictSame(
    h.store.messages.map((m) => m.sender_name),
    ['User', 'Copy', 'AI'],
  )
  const stamps = h.store.messages.map((m) => m.timestamp)
  t.strictSame(stamps, [...stamps].sort(), 'timestamps in emission order')
  t.strictSame(
    outcome.results.flatMap((result) => result.messages.map((m) => m.timestamp)),
    stamps,
  )
})

t.test('a component that may read what the store assigns gets the stored message', async (t) => {
  const h = batching()
  const json = flow(
    [
      node('chat', 'ChatInput', { input_value: 'when?' }),
      node('convert', 'TypeConverterComponent', { output_type: 'Data' }),
      node('out', 'ChatOutput', { data_template: '{timestamp}' }),
    ],
    [edge('chat', 'message', 'convert', 'input_data'), edge('convert', 'data_output', 'out', 'input_value')],
  )
  const { response } = await run(h, json, { session_id: 's' })
  t.strictSame(h.store.calls, ['store', 'store'], 'the user message is stored before the converter runs')
  const user = h.store.messages[0] as Message
  t.equal(response.outputs[0]?.outputs[0]?.outputs.message?.message, user.timestamp, "the store's timestamp")
})

t.test('a model call comes after the messages emitted before it are stored', async (t) => {
  const h = batching()
  const seen: string[][] = []
  h.model.reply = () => {
    seen.push(h.store.messages.map((m) => m.sender))
    return 'answer'
  }
  await run(h, fixture('basic'), { input_value: 'q', session_id: 's' })
  t.strictSame(seen, [['User']], 'the user message was stored when the model was called')
  t.strictSame(h.store.calls, ['store', 'store'])
})

t.test('a failure in the middle: the messages before it and the error message in one write', async (t) => {
  const h = batching()
  const registry = registryWith(contentProbe('Boom', new Error('kaput')))
  const json = flow(
    [node('chat', 'ChatInput', { input_value: 'hi' }), node('boom', 'Boom', {}, 'Boom Box'), node('out', 'ChatOutput')],
    [edge('chat', 'message', 'boom', 'input_value'), edge('boom', 'out', 'out', 'input_value')],
  )
  const events: Message[] = []
  const failure = await run(h, json, { session_id: 's' }, { registry, onEvent: (e) => events.push(e.data as Message) })
    .then(() => undefined)
    .catch((e: unknown) => e as ComponentFailedError)
  t.type(failure, ComponentFailedError)
  t.strictSame(h.store.calls, ['storeMany:2'], 'one write')
  t.strictSame(
    h.store.messages.map((m) => [m.sender_name, m.category]),
    [
      ['User', 'message'],
      ['Boom Box', 'error'],
    ],
  )
  t.strictSame(failure?.errorMessage, h.store.messages[1], 'the stored error message')
  t.strictSame(events, h.store.messages, 'announced once stored')
})

t.test('a write without an answer fails the run at the component that emitted its first message', async (t) => {
  const h = batching()
  const lost = new Error('message-store unavailable')
  h.store.failBatch = { error: lost }
  const failure = (await run(h, fixture('simple'), { input_value: 'x', session_id: 's' }).catch(
    (e: unknown) => e,
  )) as ComponentFailedError
  t.type(failure, ComponentFailedError)
  t.equal(failure.cause, lost, 'the cause lets the route answer 503')
  t.equal(failure.component.componentType, 'ChatInput', 'where it would have failed writing each message at once')
  t.strictSame(h.store.calls, ['storeMany:2', 'store'], 'the error message is written on its own')
  t.strictSame(
    h.store.messages.map((m) => [m.sender_name, m.category]),
    [['Chat Input', 'error']],
  )
})

t.test('a refused message: those before it stay stored, the run fails at its component', async (t) => {
  const h = batching()
  const refused = new Error('422 too long')
  h.store.failBatch = { error: refused, storedFirst: 1 }
  const events: string[] = []
  const failure = (await run(
    h,
    fixture('simple'),
    { input_value: 'x', session_id: 's' },
    { onEvent: (e) => events.push(`${e.event}:${(e.data as Message).sender_name}`) },
  ).catch((e: unknown) => e)) as ComponentFailedError
  t.equal(failure.cause, refused)
  t.equal(failure.component.componentType, 'ChatOutput')
  t.strictSame(
    h.store.messages.map((m) => [m.sender, m.category]),
    [
      ['User', 'message'],
      ['Machine', 'error'],
    ],
    'the user message, then the error message',
  )
  t.match(events, ['add_message:User', 'add_message:'])
})

t.test('cancelled while the run waits: what was emitted before is stored, no error message', async (t) => {
  const h = batching()
  const controller = new AbortController()
  const registry = registryWith(contentProbe('Waiter'))
  const json = flow(
    [node('chat', 'ChatInput', { input_value: 'bye' }), node('wait', 'Waiter'), node('out', 'ChatOutput')],
    [edge('chat', 'message', 'wait', 'input_value'), edge('chat', 'message', 'out', 'input_value')],
  )
  const running = run(h, json, { session_id: 's' }, { registry, signal: controller.signal })
  setImmediate(() => controller.abort(new Error('client went away')))
  const failure = await running.catch((e: unknown) => e)
  t.type(failure, RunAbortedError)
  t.strictSame(
    h.store.messages.map((m) => [m.sender, m.error]),
    [
      ['User', false],
      ['Machine', false],
    ],
  )
})

t.test('a streamed run stores each message as it is emitted', async (t) => {
  const h = batching()
  const { events } = await run(h, fixture('simple'), { input_value: 'hi', session_id: 's' }, { stream: true })
  t.strictSame(h.store.calls, ['store', 'store'])
  t.strictSame(
    events.map((e) => e.event),
    ['add_message', 'add_message'],
  )
})
