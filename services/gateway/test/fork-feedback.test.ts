import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { deleteRedisKeys, startFakeModel, testBackends } from '@session-runtime/stack'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { KEY_A, KEY_B, startStack } from './helpers/stack.js'

/**
 * Fork and feedback (issue 15) through the gateway, with the real run-service and message-store (its history cache
 * in Redis when the test command found one): a run in a fork sees the copied history in Memory and the original's
 * runs do not see the fork's; feedback is counted and listed; tenant B reaches none of A's.
 */

t.setTimeout(300_000)

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const chatbot = () => JSON.parse(readFileSync(`${fixtures}/langflow-memory-chatbot.json`, 'utf8'))

const model = await startFakeModel(t)
const redisUrl = testBackends().redisUrl
const keyPrefix = `gw_fork_${process.pid}_${randomBytes(4).toString('hex')}:`
if (redisUrl) t.teardown(() => deleteRedisKeys(redisUrl, keyPrefix).catch(() => {}))
const { gateway, store } = await startStack(t, {
  modelUrl: model.url,
  storeEnv: redisUrl ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: keyPrefix } : {},
})
t.comment(`history cache: ${store.repository.cacheState().kind}`)

const as = (key: string) => (opts: InjectOptions) =>
  gateway.inject({ ...opts, headers: { 'x-api-key': key, ...opts.headers } })
const asA = as(KEY_A)
const asB = as(KEY_B)

const flow = ((await asA({ method: 'POST', url: '/api/v1/flows/', payload: chatbot() })).json() as { id: string }).id

interface Message {
  id: string
  session_id: string
  sender: string
  text: string
  properties: Record<string, unknown>
}
interface Summary {
  session_id: string
  message_count: number
  last_text: string
  positive_feedback_count: number
  negative_feedback_count: number
}

async function run(session: string, input: string) {
  const res = await asA({
    method: 'POST',
    url: `/api/v1/run/${flow}`,
    payload: { input_value: input, session_id: session },
  })
  if (res.statusCode !== 200) throw new Error(`run failed: ${res.statusCode} ${res.body}`)
  // the Memory node puts the session's history into the model's system prompt
  return model.calls.at(-1)?.system ?? ''
}

const messages = async (session: string) =>
  (await asA({ url: `/api/v1/monitor/messages?flow_id=${flow}&session_id=${session}` })).json() as Message[]

t.test('a run in a fork sees the copied history; runs in the original do not see the fork', async (t) => {
  for (const input of ['one', 'two', 'three']) await run('main', input)
  const original = await messages('main')
  t.equal(original.length, 6)
  const point = original[3] as Message // the reply to 'two'

  const forked = await asA({
    method: 'POST',
    url: `/api/v1/monitor/sessions/main/fork?flow_id=${flow}`,
    payload: { new_session_id: 'branch', up_to_message_id: point.id },
  })
  t.equal(forked.statusCode, 201, forked.body)
  t.match(forked.json(), { session_id: 'branch', message_count: 4, last_text: point.text })

  const inFork = await run('branch', 'four')
  t.ok(inFork.includes('User: one') && inFork.includes('User: two'), 'the copied turns are in Memory')
  t.notOk(inFork.includes('User: three'), 'nothing after the fork point')
  t.ok(inFork.includes('User: four'))
  const inOriginal = await run('main', 'five')
  t.ok(inOriginal.includes('User: three'), "the original's own history")
  t.notOk(inOriginal.includes('User: four'), "nothing of the fork's run")
  t.same(
    (await messages('branch')).map((m) => m.text),
    [...original.slice(0, 4).map((m) => m.text), 'four', 'You said: four'],
  )

  // a fork without a body: the whole session under a generated id
  const whole = await asA({ method: 'POST', url: `/api/v1/monitor/sessions/main/fork?flow_id=${flow}` })
  t.equal(whole.statusCode, 201, whole.body)
  t.match(whole.json(), { message_count: 8, last_text: 'You said: five' })
})

t.test(
  'fork errors through the gateway: 404, 409, 422 (oversize or NUL session ids, foreign fork point)',
  async (t) => {
    const fork = (session: string, payload?: unknown) =>
      asA({
        method: 'POST',
        url: `/api/v1/monitor/sessions/${session}/fork?flow_id=${flow}`,
        ...(payload === undefined ? {} : { payload: payload as never }),
      })
    t.equal((await fork('nope')).statusCode, 404)
    t.equal((await fork('main', { new_session_id: 'branch' })).statusCode, 409)
    const [other] = await messages('branch')
    const res = await fork('main', { new_session_id: 'x', up_to_message_id: other?.id })
    t.equal(res.statusCode, 422)
    t.equal(res.json().code, 'MSGSTORE_INVALID_FORK_POINT')
    t.equal((await fork('x'.repeat(256))).statusCode, 422, 'a path session id of 256 code points')
    t.equal((await fork('a%00b')).statusCode, 422, 'a NUL in the path session id')
    t.equal((await fork('main', { new_session_id: 'x'.repeat(256) })).statusCode, 422)
    t.equal((await fork('main', { new_session_id: 'a\u0000b' })).statusCode, 422)
  },
)

t.test('feedback through the gateway: PUT, summary counts, the keyset-paged list', async (t) => {
  const replies = (await messages('branch')).filter((m) => m.sender === 'Machine')
  const [first, second] = replies
  if (!first || !second) throw new Error('no replies')
  const give = (m: Message, positive: unknown) =>
    asA({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${m.id}`,
      payload: { properties: { ...m.properties, positive_feedback: positive } },
    })
  t.equal((await give(first, true)).statusCode, 200)
  const down = await give(second, false)
  t.equal(down.statusCode, 200)
  t.equal(down.json().properties.positive_feedback, false)
  const bad = await give(first, 'yes')
  t.equal(bad.statusCode, 422)
  t.equal(bad.json().code, 'MSGSTORE_VALIDATION')

  const sessions = (await asA({ url: `/api/v1/monitor/sessions?flow_id=${flow}` })).json() as Summary[]
  t.match(
    sessions.find((s) => s.session_id === 'branch'),
    { positive_feedback_count: 1, negative_feedback_count: 1 },
  )
  t.match(
    sessions.find((s) => s.session_id === 'main'),
    { positive_feedback_count: 0, negative_feedback_count: 0 },
  )

  const page1 = await asA({ url: `/api/v1/monitor/feedback?flow_id=${flow}&limit=1` })
  t.equal(page1.statusCode, 200)
  t.same(
    (page1.json() as Message[]).map((m) => m.id),
    [second.id],
    'newest first',
  )
  const cursor = page1.headers['x-next-cursor']
  t.type(cursor, 'string', 'the next cursor passes the gateway')
  const page2 = await asA({ url: `/api/v1/monitor/feedback?flow_id=${flow}&limit=1&cursor=${cursor}` })
  t.same(
    (page2.json() as Message[]).map((m) => m.id),
    [first.id],
  )
  t.notOk(page2.headers['x-next-cursor'], 'the last page')
  t.same((await asA({ url: `/api/v1/monitor/feedback?flow_id=${flow}&session_id=main` })).json(), [])
  t.equal((await asA({ url: '/api/v1/monitor/feedback' })).statusCode, 422, 'flow_id is required')
})

t.test("tenant B reaches none of A's: fork, feedback, list", async (t) => {
  const fork = await asB({
    method: 'POST',
    url: `/api/v1/monitor/sessions/main/fork?flow_id=${flow}`,
    payload: { new_session_id: 'stolen' },
  })
  t.equal(fork.statusCode, 404)
  t.equal(fork.json().code, 'MSGSTORE_SESSION_NOT_FOUND')
  const [reply] = (await messages('main')).filter((m) => m.sender === 'Machine')
  const put = await asB({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${reply?.id}`,
    payload: { properties: { positive_feedback: false } },
  })
  t.equal(put.statusCode, 404)
  t.same((await asB({ url: `/api/v1/monitor/feedback?flow_id=${flow}` })).json(), [])
  t.same((await asB({ url: `/api/v1/monitor/sessions?flow_id=${flow}` })).json(), [])
  t.match(
    ((await asA({ url: `/api/v1/monitor/sessions?flow_id=${flow}` })).json() as Summary[]).find(
      (s) => s.session_id === 'main',
    ),
    { negative_feedback_count: 0 },
    "A's counts are unchanged",
  )
  t.same(await messages('stolen'), [])
})

t.test('the routes are in the merged OpenAPI document', async (t) => {
  const doc = (await gateway.inject({ url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown }>>
  }
  const fork = doc.paths['/api/v1/monitor/sessions/{session_id}/fork']?.post
  t.ok(fork?.responses['201'] && fork.responses['409'] && fork.responses['422'])
  t.ok(fork?.security, 'needs the API key')
  t.ok(doc.paths['/api/v1/monitor/feedback']?.get?.responses['200'])
  t.ok(doc.paths['/api/v1/monitor/messages/{id}']?.put)
})
