// The run's writes on the real message-store: the port's batch write (src/ports/message-store.ts) and what a run
// sends. A non-streamed echo run makes one write (`POST /internal/messages/batch`); Memory Echo writes the user
// message before its history read and the reply after. A batch without an answer is recorded as unconfirmed,
// message by message; a retried batch stores nothing twice; a refused one goes one message at a time. A value
// made from a message not stored yet reads as it would from the stored message.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMessageStoreClient, MessageStoreError, MessageStoreUnavailableError } from '@session-runtime/clients'
import type { Message, MessageInput } from '@session-runtime/schemas'
import t from 'tap'
import { UnconfirmedMessages } from '../src/domain/unconfirmed-messages.js'
import { PartialWriteError } from '../src/index.js'
import { messageStorePort } from '../src/ports/message-store.js'
import { buildTestApp, INTERNAL_TOKEN, internalHeaders, startMessageStore, storageKind } from './helpers/app.js'
import { edge, fixturePath, flow, node } from './helpers/flows.js'

t.comment(`storage: ${storageKind}`)
// several runs against a real message-store: past tap's default 30 s on embedded PGlite on a busy machine
t.setTimeout(120_000)

type Mode = 'pass' | 'lose-next-answer' | 'refuse'

/** Forwards to the message-store and logs each call (`METHOD /path`); `mode` can lose an answer or refuse. */
async function recordingProxy(target: string) {
  const proxy = { mode: 'pass' as Mode, calls: [] as string[], url: '' }
  const upstream = new URL(target)
  const server = createServer((incoming, answer) => {
    const path = incoming.url ?? '/'
    if (path.startsWith('/internal')) proxy.calls.push(`${incoming.method} ${path.split('?')[0]}`)
    if (proxy.mode === 'refuse') {
      incoming.socket.destroy()
      return
    }
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: incoming.method, path, headers: incoming.headers },
      (response) => {
        if (proxy.mode === 'lose-next-answer') {
          // the store answered (the write committed); the caller never hears it
          proxy.mode = 'pass'
          response.resume()
          response.on('end', () => incoming.socket.destroy())
          return
        }
        answer.writeHead(response.statusCode ?? 502, response.headers)
        response.pipe(answer)
      },
    )
    incoming.pipe(forwarded)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  server.on('connection', (socket) => t.teardown(() => socket.destroy()))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return proxy
}

const store = await startMessageStore(t)
const proxy = await recordingProxy(store.url)

async function stored(tenant: string, flowId: string, sessionId: string): Promise<Message[]> {
  const res = await store.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(tenant),
    query: { flow_id: flowId, session_id: sessionId },
  })
  return res.json() as Message[]
}

t.test('the port', async (t) => {
  const client = createMessageStoreClient({
    url: proxy.url,
    internalToken: INTERNAL_TOKEN,
    retryMinDelay: 10,
    retryMaxDelay: 20,
  })
  t.teardown(() => client.close())
  const unconfirmed = new UnconfirmedMessages({
    outbox: {
      add: async () => {},
      oldest: async () => [],
      remove: async () => {},
    },
    store: { storeFailed: async () => [] },
    isTransient: () => true,
  })
  const tenant = 'tenant-port'
  const port = messageStorePort(client, tenant, 'request-1', unconfirmed)
  const signal = new AbortController().signal
  const flowId = randomUUID()
  const inputs = (session: string, ...texts: string[]): MessageInput[] =>
    texts.map((text, index) => ({
      id: randomUUID(),
      flow_id: flowId,
      session_id: session,
      sender: index % 2 === 0 ? 'User' : 'Machine',
      sender_name: index % 2 === 0 ? 'User' : 'AI',
      text,
    }))

  t.beforeEach(() => {
    proxy.mode = 'pass'
    proxy.calls.length = 0
  })

  t.test('storeMany: one write, stored in order, the stored messages answered', async (t) => {
    const batch = inputs('ordered', 'one', 'two', 'three')
    const answered = await port.storeMany?.(batch, { signal })
    t.strictSame(proxy.calls, ['POST /internal/messages/batch'])
    t.strictSame(await stored(tenant, flowId, 'ordered'), answered, 'read back as answered, in order')
    t.strictSame(
      answered?.map((m) => m.id),
      batch.map((m) => m.id),
    )
    const stamps = answered?.map((m) => m.timestamp) ?? []
    // never decrease (spec §4: ties are allowed, broken by the sequence; embedded PGlite's clock has millisecond
    // resolution, so messages of one batch often tie there)
    t.ok(
      stamps.every((stamp, i) => i === 0 || stamp >= (stamps[i - 1] as string)),
      'timestamps never decrease',
    )
  })

  t.test('a batch whose answer is lost is sent again and stored once', async (t) => {
    const batch = inputs('retried', 'question', 'answer')
    proxy.mode = 'lose-next-answer'
    const answered = await port.storeMany?.(batch, { signal })
    t.strictSame(proxy.calls, ['POST /internal/messages/batch', 'POST /internal/messages/batch'], 'retried once')
    const read = await stored(tenant, flowId, 'retried')
    t.equal(read.length, 2, 'stored once')
    t.strictSame(answered, read, 'the retry answers the messages stored by the first attempt')
    t.equal(unconfirmed.unsavedCount, 0, 'confirmed: nothing recorded')
  })

  t.test('a batch that gets no answer: every message recorded as unconfirmed', async (t) => {
    const batch = inputs('lost', 'question', 'answer')
    const before = unconfirmed.unsavedCount
    proxy.mode = 'refuse'
    await t.rejects(port.storeMany?.(batch, { signal }) as Promise<Message[]>, MessageStoreUnavailableError)
    t.equal(proxy.calls.length, 3, 'three attempts')
    t.equal(unconfirmed.unsavedCount - before, 2, 'both messages recorded')
  })

  t.test('a refused batch goes one message at a time: those before the refused one are stored', async (t) => {
    const [first, second] = inputs('refused', 'fine', 'refused')
    const batch = [first as MessageInput, { ...(second as MessageInput), sender_name: 'x'.repeat(300) }]
    const before = unconfirmed.unsavedCount
    const failure = await port.storeMany?.(batch, { signal }).catch((e: unknown) => e)
    t.type(failure, PartialWriteError)
    t.equal((failure as PartialWriteError).stored.length, 1)
    t.type((failure as PartialWriteError).cause, MessageStoreError)
    t.equal(((failure as PartialWriteError).cause as MessageStoreError).statusCode, 422)
    t.strictSame(proxy.calls, ['POST /internal/messages/batch', 'POST /internal/messages', 'POST /internal/messages'])
    t.strictSame(
      (await stored(tenant, flowId, 'refused')).map((m) => m.text),
      ['fine'],
    )
    t.equal(unconfirmed.unsavedCount, before, 'a refusal is a definite answer: nothing recorded')
  })
})

t.test('what a run sends', async (t) => {
  const app = await buildTestApp(t, { messageStoreUrl: proxy.url })
  const tenant = 'tenant-runs'
  const headers = internalHeaders(tenant)
  const { id: _id, ...echo } = JSON.parse(readFileSync(fixturePath('simple'), 'utf8'))
  const created = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: echo })
  const echoId = created.json().id as string
  const flows = (await app.inject({ method: 'GET', url: '/api/v1/flows/', headers })).json() as {
    id: string
    endpoint_name: string
  }[]
  const memoryEchoId = flows.find((f) => f.endpoint_name === 'memory-echo')?.id as string

  const runFlow = async (flowId: string, session_id: string) => {
    proxy.calls.length = 0
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/run/${flowId}`,
      headers,
      payload: { input_value: 'hello', session_id },
    })
    t.equal(res.statusCode, 200, res.body)
    return res.json() as { outputs: { outputs: { results: { message: Message } }[] }[] }
  }

  const body = await runFlow(echoId, 'echo')
  t.strictSame(proxy.calls, ['POST /internal/messages/batch'], 'an echo run: one write')
  const [user, reply] = await stored(tenant, echoId, 'echo')
  t.strictSame([user?.sender, reply?.sender], ['User', 'Machine'])
  t.strictSame(body.outputs[0]?.outputs[0]?.results.message, reply, 'the response carries the stored reply')

  await runFlow(memoryEchoId, 'memory')
  t.strictSame(
    proxy.calls,
    ['POST /internal/messages/then-history', 'POST /internal/messages'],
    'Memory Echo: the user message stored and the history read in one call, then the reply',
  )

  // A value made from a message not stored yet reads as it would from the stored one: lone surrogates as U+FFFD.
  const derived = flow(
    [node('chat', 'ChatInput'), node('prompt', 'Prompt', { template: 'said: {input}' }), node('text', 'TextOutput')],
    [edge('chat', 'message', 'prompt', 'input'), edge('prompt', 'prompt', 'text', 'input_value')],
  )
  const { id: _flowId, ...derivedFlow } = derived
  const made = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers,
    payload: { name: 'derived', ...derivedFlow },
  })
  t.equal(made.statusCode, 201, made.body)
  const lone = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${made.json().id}`,
    headers: { ...headers, 'content-type': 'application/json' },
    payload: '{"input_value":"a\\ud800b","session_id":"lone"}',
  })
  t.equal(lone.statusCode, 200, lone.body)
  t.equal(lone.json().outputs[0].outputs[0].outputs.text.message, 'said: a\ufffdb')

  proxy.calls.length = 0
  const streamed = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${echoId}?stream=true`,
    headers,
    payload: { input_value: 'hello', session_id: 'streamed' },
  })
  t.equal(streamed.statusCode, 200)
  t.strictSame(proxy.calls, ['POST /internal/messages', 'POST /internal/messages'], 'streamed: one write per message')
})

t.test("a run's session_metadata: merged into its session with its one write; bad metadata a 422", async (t) => {
  const app = await buildTestApp(t, { messageStoreUrl: proxy.url })
  const tenant = `tenant-meta-${randomUUID()}`
  const headers = internalHeaders(tenant)
  const flows = (await app.inject({ method: 'GET', url: '/api/v1/flows/', headers })).json() as {
    id: string
    endpoint_name: string
  }[]
  const memoryEchoId = flows.find((f) => f.endpoint_name === 'memory-echo')?.id as string
  const { id: _id, ...echo } = JSON.parse(readFileSync(fixturePath('simple'), 'utf8'))
  const echoId = (await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: echo })).json()
    .id as string
  const summaries = async (flowId: string) =>
    (
      await store.inject({
        method: 'GET',
        url: '/api/v1/monitor/sessions',
        headers: internalHeaders(tenant),
        query: { flow_id: flowId },
      })
    ).json() as { session_id: string; message_count: number; metadata: Record<string, string> }[]
  const run = (flowId: string, payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: `/api/v1/run/${flowId}`, headers, payload: { input_value: 'hi', ...payload } })

  proxy.calls.length = 0
  let res = await run(echoId, { session_id: 's1', session_metadata: { user_id: 'u-1', plan: 'pro' } })
  t.equal(res.statusCode, 200, res.body)
  t.strictSame(proxy.calls, ['POST /internal/messages/batch'], 'still one write for the turn')
  t.strictSame(await summaries(echoId), [
    { ...(await summaries(echoId))[0], session_id: 's1', message_count: 2, metadata: { user_id: 'u-1', plan: 'pro' } },
  ])
  // the next turn merges (null removes); a turn without it keeps it
  res = await run(echoId, { session_id: 's1', session_metadata: { plan: null, locale: 'fr' } })
  t.strictSame((await summaries(echoId))[0]?.metadata, { user_id: 'u-1', locale: 'fr' })
  res = await run(echoId, { session_id: 's1' })
  t.strictSame((await summaries(echoId))[0]?.metadata, { user_id: 'u-1', locale: 'fr' })
  // without session_id the run's session is the flow id: the metadata is there
  res = await run(echoId, { session_metadata: { user_id: 'u-2' } })
  t.equal(res.statusCode, 200, res.body)
  t.strictSame((await summaries(echoId)).find((s) => s.session_id === echoId)?.metadata, { user_id: 'u-2' })
  // Memory Echo writes twice (before its history read, then the reply): the first write carries it
  proxy.calls.length = 0
  res = await run(memoryEchoId, { session_id: 'm', session_metadata: { user_id: 'u-3' } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(proxy.calls.length, 2)
  t.strictSame((await summaries(memoryEchoId))[0]?.metadata, { user_id: 'u-3' })
  // null is the default: nothing changes
  res = await run(memoryEchoId, { session_id: 'm', session_metadata: null })
  t.equal(res.statusCode, 200, res.body)
  t.strictSame((await summaries(memoryEchoId))[0]?.metadata, { user_id: 'u-3' })

  proxy.calls.length = 0
  const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']))
  for (const session_metadata of [
    { 'a b': 'x' },
    { '': 'x' },
    { ['k'.repeat(65)]: 'x' },
    { k: 'x'.repeat(513) },
    { k: 1 },
    { k: { nested: 'x' } },
    { ...sixteen, k16: 'v' },
    'x',
    ['x'],
  ]) {
    res = await run(echoId, { session_id: 'bad', session_metadata })
    t.equal(res.statusCode, 422, JSON.stringify(session_metadata).slice(0, 50))
  }
  t.strictSame(proxy.calls, [], 'a refused run writes nothing')
})
