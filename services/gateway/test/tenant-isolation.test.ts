import { readFileSync } from 'node:fs'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { KEY_A, KEY_B, startStack } from './helpers/stack.js'

/**
 * Every public route, called by tenant B against tenant A's flow, messages and sessions:
 * B sees nothing of A's, and B's edits, renames and deletes of A's things are 404s or no-ops.
 */

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const simpleFlow = () => JSON.parse(readFileSync(`${fixtures}/langflow-simple-api-test.json`, 'utf8'))

interface Message {
  id: string
  session_id: string
  flow_id: string
  text: string
}

const { gateway } = await startStack(t)
const as = (key: string) => (opts: InjectOptions) =>
  gateway.inject({ ...opts, headers: { 'x-api-key': key, ...opts.headers } })
const asA = as(KEY_A)
const asB = as(KEY_B)

const imported = await asA({ method: 'POST', url: '/api/v1/flows/', payload: simpleFlow() })
const flowA = (imported.json() as { id: string }).id
await asA({ method: 'PATCH', url: `/api/v1/flows/${flowA}`, payload: { endpoint_name: 'shared-name' } })
for (const session of ['s1', 's2']) {
  const run = await asA({
    method: 'POST',
    url: `/api/v1/run/${flowA}`,
    payload: { input_value: `A in ${session}`, session_id: session },
  })
  if (run.statusCode !== 200) throw new Error(`run: ${run.statusCode} ${run.body}`)
}

/** Everything A has, as A reads it: compared before and after B's attempts. */
async function snapshotOfA() {
  const messages = (await asA({ url: `/api/v1/monitor/messages?flow_id=${flowA}` })).json() as Message[]
  const flow = (await asA({ url: `/api/v1/flows/${flowA}` })).json() as Record<string, unknown>
  return { messages, flow }
}
const before = await snapshotOfA()
const messageOfA = before.messages[0] as Message

t.test('A has its flow and four messages in two sessions', async (t) => {
  t.equal(before.messages.length, 4)
  t.same(new Set(before.messages.map((m) => m.session_id)), new Set(['s1', 's2']))
})

t.test('flows API: A’s flow does not exist for B', async (t) => {
  const notFound = `Flow identifier ${flowA} not found`
  for (const [method, payload] of [
    ['GET', undefined],
    ['PATCH', { name: 'taken over' }],
    ['DELETE', undefined],
  ] as const) {
    const res = await asB({ method, url: `/api/v1/flows/${flowA}`, ...(payload ? { payload } : {}) })
    t.equal(res.statusCode, 404, `${method} /api/v1/flows/{id}`)
    t.equal((res.json() as { detail: string }).detail, notFound)
  }
  const list = (await asB({ url: '/api/v1/flows/' })).json() as { id: string }[]
  t.notOk(
    list.some((flow) => flow.id === flowA),
    'not in B’s list',
  )
  // importing a file that carries A's ID gives B a new ID, never A's flow
  const copy = await asB({ method: 'POST', url: '/api/v1/flows/', payload: { ...simpleFlow(), id: flowA } })
  t.equal(copy.statusCode, 201)
  t.not((copy.json() as { id: string }).id, flowA)
  t.equal((copy.json() as { original_id: string }).original_id, flowA)
})

t.test('run: A’s flow is a 404 for B, by ID and by endpoint name', async (t) => {
  for (const ref of [flowA, 'shared-name']) {
    const res = await asB({
      method: 'POST',
      url: `/api/v1/run/${ref}`,
      payload: { input_value: 'x', session_id: 's1' },
    })
    t.equal(res.statusCode, 404, ref)
    t.equal((res.json() as { detail: string }).detail, `Flow identifier ${ref} not found`)
    const streamed = await asB({ method: 'POST', url: `/api/v1/run/${ref}?stream=true`, payload: { input_value: 'x' } })
    t.equal(streamed.statusCode, 404, `${ref}, streamed`)
  }
})

t.test('monitor reads: none of A’s messages or sessions', async (t) => {
  for (const url of [
    '/api/v1/monitor/messages',
    `/api/v1/monitor/messages?flow_id=${flowA}`,
    `/api/v1/monitor/messages?flow_id=${flowA}&session_id=s1`,
    '/api/v1/monitor/messages?session_id=s1&order=DESC&limit=1000',
    `/api/v1/monitor/messages/sessions?flow_id=${flowA}`,
    '/api/v1/monitor/messages/sessions',
    '/api/v1/monitor/sessions',
    `/api/v1/monitor/sessions?flow_id=${flowA}`,
    '/api/v1/monitor/messages/search?q=A%20in',
    `/api/v1/monitor/messages/search?q=%22A%20in%20s1%22&flow_id=${flowA}&session_id=s1`,
    '/api/v1/monitor/messages/search?q=s&limit=1000',
  ]) {
    const res = await asB({ url })
    t.equal(res.statusCode, 200, url)
    t.same(res.json(), [], url)
  }
})

t.test('search through the gateway: A finds its messages, B none of them', async (t) => {
  const res = await asA({ url: '/api/v1/monitor/messages/search?q=%22A%20in%22%20S1' })
  t.equal(res.statusCode, 200)
  const inS1 = before.messages.filter((m) => m.session_id === 's1').reverse()
  t.equal(inS1.length, 2)
  t.same(res.json(), inS1, "the phrase and the word, case-insensitive: s1's question and answer, newest first")
  const bad = await asA({ url: `/api/v1/monitor/messages/search?q=${'x'.repeat(10_000)}` })
  t.equal(bad.statusCode, 422, 'a 10,000-character q')
})

t.test('monitor writes: B’s edit is a 404, its renames and deletes change nothing of A’s', async (t) => {
  const edit = await asB({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${messageOfA.id}`,
    payload: { text: 'B was here' },
  })
  t.equal(edit.statusCode, 404)
  t.equal((edit.json() as { detail: string }).detail, 'Message not found')

  const rename = await asB({ method: 'PATCH', url: '/api/v1/monitor/messages/session/s1?new_session_id=stolen' })
  t.equal(rename.statusCode, 404)
  const renameInFlow = await asB({
    method: 'PATCH',
    url: `/api/v1/monitor/messages/session/s1?new_session_id=stolen&flow_id=${flowA}`,
  })
  t.equal(renameInFlow.statusCode, 404)

  const deleteIds = await asB({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    payload: before.messages.map((m) => m.id),
  })
  t.equal(deleteIds.statusCode, 204, 'foreign IDs are ignored')
  const deleteSession = await asB({ method: 'DELETE', url: '/api/v1/monitor/messages/session/s1' })
  t.equal(deleteSession.statusCode, 204, 'a no-op')
  const deleteSessions = await asB({
    method: 'DELETE',
    url: '/api/v1/monitor/messages/sessions',
    payload: ['s1', 's2'],
  })
  t.equal(deleteSessions.statusCode, 200)
  t.equal((deleteSessions.json() as { deleted_count: number }).deleted_count, 0)

  t.same(await snapshotOfA(), before, 'A’s flow and messages are exactly as they were')
})

t.test('the same session ID in two tenants stays two conversations', async (t) => {
  const imported = await asB({ method: 'POST', url: '/api/v1/flows/', payload: simpleFlow() })
  const flowB = (imported.json() as { id: string }).id
  const run = await asB({
    method: 'POST',
    url: `/api/v1/run/${flowB}`,
    payload: { input_value: 'B in s1', session_id: 's1' },
  })
  t.equal(run.statusCode, 200)
  const bSees = (await asB({ url: '/api/v1/monitor/messages?session_id=s1' })).json() as Message[]
  t.same(
    bSees.map((m) => m.text),
    ['B in s1', 'B in s1'],
  )
  const aSees = (await asA({ url: '/api/v1/monitor/messages?session_id=s1' })).json() as Message[]
  t.same(
    aSees.map((m) => m.text),
    ['A in s1', 'A in s1'],
  )
})

t.test('retention through the gateway: A’s limits are A’s, B’s sweep never touches A’s sessions', async (t) => {
  const put = await asA({
    method: 'PUT',
    url: `/api/v1/monitor/retention?flow_id=${flowA}`,
    payload: { max_idle_seconds: 86_400 },
  })
  t.equal(put.statusCode, 200)
  t.match(put.json(), { effective: { flow_id: flowA, max_idle_seconds: 86_400, source: 'flow' } })
  t.same((await asB({ url: `/api/v1/monitor/retention?flow_id=${flowA}` })).json(), {
    default_max_idle_seconds: null,
    flows: [],
    effective: { flow_id: flowA, max_idle_seconds: null, source: 'none' },
  })
  const bPut = await asB({
    method: 'PUT',
    url: `/api/v1/monitor/retention?flow_id=${flowA}`,
    payload: { max_idle_seconds: 1 },
  })
  t.equal(bPut.statusCode, 200, 'B sets its own override of the same flow ID')
  t.equal(
    (await asB({ method: 'PUT', url: '/api/v1/monitor/retention', payload: { max_idle_seconds: 0 } })).statusCode,
    422,
  )
  const bSweep = await asB({ method: 'POST', url: '/api/v1/monitor/retention/sweep' })
  t.equal(bSweep.statusCode, 200)
  t.same(bSweep.json(), { deleted_sessions: 0, deleted_messages: 0 }, 'B’s sweep found nothing of its own')
  t.same((await asA({ url: '/api/v1/monitor/retention' })).json(), {
    default_max_idle_seconds: null,
    flows: [{ flow_id: flowA, max_idle_seconds: 86_400 }],
  })
  t.same(await snapshotOfA(), before, 'A’s messages are all there')
  await asA({ method: 'PUT', url: `/api/v1/monitor/retention?flow_id=${flowA}`, payload: { max_idle_seconds: null } })
  await asB({ method: 'PUT', url: `/api/v1/monitor/retention?flow_id=${flowA}`, payload: { max_idle_seconds: null } })
})
