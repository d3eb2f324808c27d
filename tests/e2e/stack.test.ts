// The three services as real processes (startProcessStack of packages/stack), driven only through the gateway's
// HTTP API, as a client would: import fixture flows, run them in several sessions, stream a run, page
// through the monitor API, rename and delete sessions, and check that tenants never see each other.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fakeReply, KEY_A, KEY_B, repoRoot as root, startFakeModel, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import type { StoredMessage } from '../helpers/load.js'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
const fixture = (name: string) => JSON.parse(readFileSync(join(fixturesDir, `${name}.json`), 'utf8'))

type Message = StoredMessage
interface RunBody {
  session_id: string
  outputs: { outputs: { results: { message: { text: string } }; outputs: { message: { message: unknown } } }[] }[]
}
interface Answer<T = unknown> {
  status: number
  headers: Headers
  body: T
  text: string
}

const model = await startFakeModel(t)
const stack = await startProcessStack(t, { modelUrl: model.url })

/** One request to the gateway as the holder of `key` (undefined: no key). */
async function call<T = unknown>(key: string | undefined, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {}
  if (key !== undefined) headers['x-api-key'] = key
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text } satisfies Answer<T>
}
const asA = <T = unknown>(method: string, path: string, body?: unknown) => call<T>(KEY_A, method, path, body)
const asB = <T = unknown>(method: string, path: string, body?: unknown) => call<T>(KEY_B, method, path, body)

async function importFlow(as: typeof asA, name: string) {
  const res = await as<{ id: string; name: string; original_id?: string }>('POST', '/api/v1/flows/', fixture(name))
  if (res.status !== 201) throw new Error(`import ${name}: ${res.status} ${res.text}`)
  return res.body
}

/** A run through the gateway that must succeed; returns the response and the chat text. */
async function runOk(as: typeof asA, flowId: string, input: string, sessionId?: string) {
  const res = await as<RunBody>('POST', `/api/v1/run/${flowId}`, { input_value: input, session_id: sessionId })
  if (res.status !== 200) throw new Error(`run ${flowId}: ${res.status} ${res.text}`)
  return { body: res.body, chatText: res.body.outputs[0]?.outputs[0]?.results.message.text }
}

/** Every message of a query, in one page (the tests stay well under the limit). */
async function messages(as: typeof asA, query: string): Promise<Message[]> {
  const res = await as<Message[]>('GET', `/api/v1/monitor/messages?limit=1000&${query}`)
  if (res.status !== 200) throw new Error(`messages ${query}: ${res.status} ${res.text}`)
  return res.body
}
const texts = (list: Message[]) => list.map((m) => m.text)

const memoryFixture = fixture('langflow-memory-chatbot') as { id: string; name: string }
let chatbotId = ''
let simpleId = ''

t.test('the gateway is ready, with every service up on the expected backends', async (t) => {
  const ready = await call<{ status: string; services: Record<string, { status: string; ready?: unknown }> }>(
    undefined,
    'GET',
    '/ready',
  )
  t.equal(ready.status, 200, ready.text)
  t.equal(ready.body.status, 'ok')
  t.equal(ready.body.services['run-service']?.status, 'up')
  t.equal(ready.body.services['message-store']?.status, 'up')
  // Straight from the message-store: which storage and cache this run really uses.
  const store = (await (await fetch(`${stack.services['message-store'].url}/ready`)).json()) as Record<string, string>
  t.equal(store.database, stack.backends.postgresUrl ? 'postgres' : 'pglite', 'storage backend')
  t.equal(store.cache, stack.backends.redisUrl ? 'redis' : 'memory', 'cache backend')
  if (stack.backends.redisUrl) t.equal(store.redis, 'up')
  t.equal((await call(undefined, 'GET', '/api/v1/flows/')).status, 401, 'no key, no API')
})

t.test('fixture flows are imported through the flows API', async (t) => {
  const chatbot = await importFlow(asA, 'langflow-memory-chatbot')
  t.equal(chatbot.id, memoryFixture.id, "the export's own id is kept")
  t.equal(chatbot.name, memoryFixture.name)
  chatbotId = chatbot.id
  simpleId = (await importFlow(asA, 'langflow-simple-api-test')).id
  const one = await asA<{ id: string; name: string }>('GET', `/api/v1/flows/${chatbotId}`)
  t.equal(one.status, 200)
  t.equal(one.body.name, memoryFixture.name)
  // The list may also hold the built-in example flows every tenant gets.
  const list = await asA<{ id: string }[]>('GET', '/api/v1/flows/')
  const ids = list.body.map((flow) => flow.id)
  t.ok(ids.includes(chatbotId) && ids.includes(simpleId), 'both are listed')
})

const SESSIONS = ['sess-red', 'sess-green', 'sess-blue']
const question = (session: string, turn: number) => `question ${turn} in ${session}`
/** What each session has said so far, in order (questions and the fake model's answers). */
const said: Record<string, string[]> = {}

t.test('one flow runs in several sessions; each history holds only its own messages', async (t) => {
  for (const turn of [1, 2]) {
    for (const session of SESSIONS) {
      const input = question(session, turn)
      const before = model.calls.length
      const { body, chatText } = await runOk(asA, chatbotId, input, session)
      t.equal(body.session_id, session, `${input}: the response names the session`)
      t.equal(chatText, fakeReply(input), `${input}: the chat text is the model's reply`)
      t.equal(model.calls.length, before + 1, `${input}: one model call`)
      const call = model.calls.at(-1)
      t.equal(call?.user, input)
      // The Memory node fed this session's history (and nothing else) into the system prompt.
      const system = call?.system ?? ''
      for (const text of said[session] ?? []) t.ok(system.includes(text), `${input}: history has "${text}"`)
      t.ok(system.includes(`User: ${input}`), `${input}: history has the current question`)
      for (const other of SESSIONS.filter((s) => s !== session)) {
        t.notOk(system.includes(other), `${input}: nothing of ${other} in the history`)
      }
      said[session] = [...(said[session] ?? []), input, fakeReply(input)]
    }
  }
  for (const session of SESSIONS) {
    const list = await messages(asA, `flow_id=${chatbotId}&session_id=${session}`)
    t.same(texts(list), said[session], `${session}: its messages, in order`)
    t.ok(
      list.every((m) => m.session_id === session && m.flow_id === chatbotId),
      `${session}: all in this session and flow`,
    )
    t.same(
      list.map((m) => m.sender),
      ['User', 'Machine', 'User', 'Machine'],
    )
  }
  const sessions = await asA<string[]>('GET', `/api/v1/monitor/messages/sessions?flow_id=${chatbotId}`)
  t.same([...sessions.body].sort(), [...SESSIONS].sort())
})

t.test('a streamed run: add_message, the model tokens, add_message, end', async (t) => {
  const input = 'stream this please'
  const res = await fetch(`${stack.gatewayUrl}/api/v1/run/${chatbotId}?stream=true`, {
    method: 'POST',
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
    body: JSON.stringify({ input_value: input, session_id: 'sess-stream' }),
    signal: AbortSignal.timeout(20_000),
  })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  const raw = await res.text()
  const events = raw
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { event: string; data: Record<string, unknown> })
  const names = events.map((e) => e.event)
  const reply = fakeReply(input)
  const pieces = reply.split(/(?<= )/)
  t.same(names, ['add_message', ...pieces.map(() => 'token'), 'add_message', 'end'], 'events in order, end last')
  t.ok(model.calls.at(-1)?.stream, 'the model was asked to stream')

  const [userMessage, ...rest] = events
  t.equal(userMessage?.data.text, input)
  t.equal(userMessage?.data.session_id, 'sess-stream')
  const tokens = rest.filter((e) => e.event === 'token')
  t.same(
    tokens.map((e) => e.data.chunk),
    pieces,
    "the fake model's chunks, as they came",
  )
  const aiMessage = events.at(-2)
  t.equal(aiMessage?.data.text, reply, 'the stored reply is the joined tokens')
  t.equal(aiMessage?.data.session_id, 'sess-stream')
  t.ok(
    tokens.every((e) => e.data.id === aiMessage?.data.id),
    'tokens carry the id the reply is stored under',
  )
  const result = events.at(-1)?.data.result as RunBody
  t.equal(result.session_id, 'sess-stream')
  t.equal(result.outputs[0]?.outputs[0]?.results.message.text, reply)

  const stored = await messages(asA, `flow_id=${chatbotId}&session_id=sess-stream`)
  t.same(texts(stored), [input, reply], 'stored once each')
  t.same(
    stored.map((m) => m.id),
    [userMessage?.data.id, aiMessage?.data.id],
    'under the streamed ids',
  )
})

t.test('the monitor API pages with X-Next-Cursor to the end, without duplicates or gaps', async (t) => {
  for (let i = 1; i <= 13; i++) await runOk(asA, simpleId, `page ${i}`, i % 2 === 0 ? 'page-even' : 'page-odd')
  const all = await messages(asA, `flow_id=${simpleId}`)
  t.equal(all.length, 26, 'two messages per run')

  for (const order of ['ASC', 'DESC'] as const) {
    const seen: Message[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const query = `flow_id=${simpleId}&order=${order}&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const page = await asA<Message[]>('GET', `/api/v1/monitor/messages?${query}`)
      t.equal(page.status, 200, `${order} page ${pages + 1}`)
      seen.push(...page.body)
      cursor = page.headers.get('x-next-cursor') ?? undefined
      pages++
      if (cursor) t.equal(page.body.length, 4, `${order}: a page followed by more is full`)
    } while (cursor && pages < 20)
    t.equal(pages, 7, `${order}: 26 messages in pages of 4`)
    const ids = seen.map((m) => m.id)
    t.equal(new Set(ids).size, ids.length, `${order}: no duplicates`)
    const expected = order === 'ASC' ? all : [...all].reverse()
    t.same(
      ids,
      expected.map((m) => m.id),
      `${order}: every message, in order`,
    )
  }
  // Questions before answers, runs in order: the order is total even within one run.
  t.same(texts(all).slice(0, 4), ['page 1', 'page 1', 'page 2', 'page 2'])
  t.same(
    all.slice(0, 2).map((m) => m.sender),
    ['User', 'Machine'],
  )

  const summaries: string[] = []
  let cursor: string | undefined
  for (let pages = 0; pages < 20; pages++) {
    const page = await asA<{ session_id: string }[]>(
      'GET',
      `/api/v1/monitor/sessions?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    )
    t.equal(page.status, 200)
    summaries.push(...page.body.map((s) => s.session_id))
    cursor = page.headers.get('x-next-cursor') ?? undefined
    if (!cursor) break
  }
  t.equal(cursor, undefined, 'the sessions list ends')
  t.same(
    [...summaries].sort(),
    [...SESSIONS, 'sess-stream', 'page-even', 'page-odd'].sort(),
    'every session of the tenant once',
  )
  t.equal(summaries[0], 'page-odd', 'most recently active first')
})

t.test('renaming a session moves its messages and its history', async (t) => {
  const res = await asA<Message[]>('PATCH', '/api/v1/monitor/messages/session/sess-blue?new_session_id=sess-navy')
  t.equal(res.status, 200, res.text)
  t.same(texts(res.body), said['sess-blue'])
  t.ok(res.body.every((m) => m.session_id === 'sess-navy'))
  t.same(await messages(asA, 'session_id=sess-blue'), [], 'nothing left under the old name')
  t.same(texts(await messages(asA, 'session_id=sess-navy')), said['sess-blue'])
  const sessions = await asA<string[]>('GET', `/api/v1/monitor/messages/sessions?flow_id=${chatbotId}`)
  t.ok(sessions.body.includes('sess-navy'))
  t.notOk(sessions.body.includes('sess-blue'))

  // The conversation continues under the new name, with its history.
  const input = 'question 3 in sess-navy'
  await runOk(asA, chatbotId, input, 'sess-navy')
  const system = model.calls.at(-1)?.system ?? ''
  for (const text of said['sess-blue'] ?? []) t.ok(system.includes(text), `the renamed history has "${text}"`)
  said['sess-navy'] = [...(said['sess-blue'] ?? []), input, fakeReply(input)]
  delete said['sess-blue']
  // And the old name starts afresh.
  await runOk(asA, chatbotId, 'hello again', 'sess-blue')
  t.notOk(model.calls.at(-1)?.system?.includes('question 1'), 'the old name has no history')
  said['sess-blue'] = ['hello again', fakeReply('hello again')]
})

t.test('deleting a session removes its messages and its history', async (t) => {
  const res = await asA('DELETE', '/api/v1/monitor/messages/session/sess-green')
  t.equal(res.status, 204)
  t.same(await messages(asA, `flow_id=${chatbotId}&session_id=sess-green`), [])
  const sessions = await asA<string[]>('GET', `/api/v1/monitor/messages/sessions?flow_id=${chatbotId}`)
  t.notOk(sessions.body.includes('sess-green'))
  t.ok(sessions.body.includes('sess-red'), 'other sessions stay')
  t.same(texts(await messages(asA, 'session_id=sess-red')), said['sess-red'])

  await runOk(asA, chatbotId, 'after the delete', 'sess-green')
  const system = model.calls.at(-1)?.system ?? ''
  t.ok(system.includes('User: after the delete'))
  t.notOk(system.includes('question 1 in sess-green'), 'the deleted history is gone, from the cache too')
  t.same(texts(await messages(asA, 'session_id=sess-green')), ['after the delete', fakeReply('after the delete')])
})

t.test("tenant B never sees or changes tenant A's flows and messages", async (t) => {
  const aBefore = await messages(asA, '')
  t.ok(aBefore.length > 30, 'A has messages')
  const aMessage = aBefore[0] as Message

  t.equal((await asB('GET', `/api/v1/flows/${chatbotId}`)).status, 404, 'flow: 404')
  const aFlows = (await asA<{ id: string }[]>('GET', '/api/v1/flows/')).body.map((flow) => flow.id)
  const bFlows = (await asB<{ id: string }[]>('GET', '/api/v1/flows/')).body.map((flow) => flow.id)
  t.same(
    bFlows.filter((id) => aFlows.includes(id)),
    [],
    "flow list: none of A's",
  )
  t.equal((await asB('PATCH', `/api/v1/flows/${chatbotId}`, { name: 'mine now' })).status, 404, 'flow update: 404')
  t.equal((await asB('DELETE', `/api/v1/flows/${simpleId}`)).status, 404, 'flow delete: 404')
  const run = await asB<{ detail: string }>('POST', `/api/v1/run/${chatbotId}`, { input_value: 'hi', session_id: 'x' })
  t.equal(run.status, 404, 'run: 404')
  t.equal(run.body.detail, `Flow identifier ${chatbotId} not found`)
  const stream = await asB('POST', `/api/v1/run/${chatbotId}?stream=true`, { input_value: 'hi' })
  t.equal(stream.status, 404, 'streamed run: 404 before any event')

  t.same(await messages(asB, ''), [], 'messages: none')
  t.same(await messages(asB, `flow_id=${chatbotId}`), [], "messages of A's flow: none")
  t.same(await messages(asB, 'session_id=sess-red'), [], "messages of A's session: none")
  t.same((await asB('GET', '/api/v1/monitor/messages/sessions')).body, [], 'session ids: none')
  t.same((await asB('GET', '/api/v1/monitor/sessions')).body, [], 'session summaries: none')

  const rename = await asB('PATCH', '/api/v1/monitor/messages/session/sess-red?new_session_id=stolen')
  t.equal(rename.status, 404, "renaming A's session: 404, as if it had no messages")
  t.equal((await asB('DELETE', '/api/v1/monitor/messages/session/sess-red')).status, 204, 'delete: a no-op 204')
  const bulk = await asB<{ deleted_count: number }>('DELETE', '/api/v1/monitor/messages/sessions', ['sess-red'])
  t.equal(bulk.body.deleted_count, 0)
  t.equal((await asB('DELETE', '/api/v1/monitor/messages', [aMessage.id])).status, 204, 'delete by id: ignored')
  const edit = await asB('PUT', `/api/v1/monitor/messages/${aMessage.id}`, { text: 'defaced' })
  t.equal(edit.status, 404, 'edit: 404')

  // B imports the same export: its own copy under a new id, with its own sessions of the same names.
  const copy = await importFlow(asB, 'langflow-memory-chatbot')
  t.not(copy.id, chatbotId, 'the id is taken (by A), so B gets a new one')
  t.equal(copy.original_id, chatbotId)
  const { chatText } = await runOk(asB, copy.id, 'question from B', 'sess-red')
  t.equal(chatText, fakeReply('question from B'))
  const system = model.calls.at(-1)?.system ?? ''
  t.notOk(system.includes('question 1 in sess-red'), "B's sess-red history has nothing of A's sess-red")
  t.same(texts(await messages(asB, '')), ['question from B', fakeReply('question from B')])

  const aAfter = await messages(asA, '')
  t.same(aAfter, aBefore, "A's messages are exactly as before")
  t.equal((await asA('GET', `/api/v1/flows/${simpleId}`)).status, 200, "A's flows are still there")
  t.equal((await asA<{ name: string }>('GET', `/api/v1/flows/${chatbotId}`)).body.name, memoryFixture.name)
})
