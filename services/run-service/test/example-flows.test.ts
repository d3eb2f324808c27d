import t from 'tap'
import { ExampleFlowSeeder, exampleFlowId, loadExampleFlows, seedExampleFlows } from '../src/domain/example-flows.js'
import { createFlow } from '../src/domain/flow-repository.js'
import { builtInComponents } from '../src/engine/index.js'
import {
  backends,
  buildTestApp,
  internalHeaders,
  type MessageStore,
  sessionMessages,
  startMessageStore,
  storageKind,
  type TestApp,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

/** The shipped example's own id (services/run-service/examples/memory-echo.json). */
const MEMORY_ECHO = '65841e7a-f394-4cc5-9fbd-aa7b5767c3f1'
/** Any model call would fail: nothing listens here. */
const NO_MODEL = { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', OPENAI_API_KEY: '' }

interface StoredFlow {
  id: string
  name: string
  endpoint_name: string | null
  data: { nodes: { data: { type?: string } }[] }
}

interface RunBody {
  session_id: string
  outputs: { outputs: { outputs: { message: { message: string } } }[] }[]
}

const store: MessageStore = await startMessageStore(t)
/** One app for the tests below: each uses tenants of its own, which the app has never seen. */
const app: TestApp = await buildTestApp(t, { messageStoreUrl: store.url, env: NO_MODEL })

function listFlows(app: TestApp, tenant: string) {
  return app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders(tenant) })
}

async function flowsOf(app: TestApp, tenant: string): Promise<StoredFlow[]> {
  const res = await listFlows(app, tenant)
  if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${res.body}`)
  return res.json() as StoredFlow[]
}

function run(app: TestApp, tenant: string, flow: string, payload: Record<string, unknown>) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/run/${flow}`,
    headers: internalHeaders(tenant),
    payload,
  })
}

/** The ChatOutput text of a run. */
async function answer(app: TestApp, tenant: string, sessionId: string, input: string): Promise<string> {
  const res = await run(app, tenant, 'memory-echo', { input_value: input, session_id: sessionId })
  if (res.statusCode !== 200) throw new Error(`run: ${res.statusCode} ${res.body}`)
  const body = res.json() as RunBody
  if (body.session_id !== sessionId) throw new Error(`run answered session ${body.session_id}`)
  return body.outputs[0]?.outputs[0]?.outputs.message.message ?? '<none>'
}

const storedMessages = (tenant: string, flowId: string, sessionId: string) =>
  sessionMessages(store, tenant, flowId, sessionId)

async function seededRows(app: TestApp, tenant: string): Promise<number> {
  const { rows } = await app.db.query('SELECT tenant_id FROM example_flows_seeded WHERE tenant_id = $1', [tenant])
  return rows.length
}

t.test('the shipped examples load and are valid; Memory Echo has a fixed id and an endpoint name', async (t) => {
  const examples = loadExampleFlows(builtInComponents)
  const echo = examples.find((example) => example.file === 'memory-echo.json')
  t.match(echo, { id: MEMORY_ECHO, name: 'Memory Echo', endpoint_name: 'memory-echo' })
  const types = ((echo?.data as StoredFlow['data'] | undefined)?.nodes ?? []).map((node) => node.data.type)
  t.same(types.filter((type) => type !== 'note').sort(), ['ChatInput', 'ChatOutput', 'Memory', 'Prompt'], 'no model')
  t.equal(exampleFlowId(MEMORY_ECHO, 'default'), 'b192379b-6475-57a4-9b77-21fecb3b67eb', 'UUID v5, as documented')
  t.not(exampleFlowId(MEMORY_ECHO, 'a'), exampleFlowId(MEMORY_ECHO, 'b'))
})

t.test('a new tenant sees the example in its flow list', async (t) => {
  const flows = await flowsOf(app, 'newcomer')
  t.equal(flows.length, 1, 'exactly the example')
  t.match(flows[0], { id: exampleFlowId(MEMORY_ECHO, 'newcomer'), name: 'Memory Echo', endpoint_name: 'memory-echo' })
  const one = await app.inject({
    method: 'GET',
    url: `/api/v1/flows/${flows[0]?.id}`,
    headers: internalHeaders('newcomer'),
  })
  t.equal(one.statusCode, 200)
  t.equal(await seededRows(app, 'newcomer'), 1)
})

t.test('it runs with no model, and each session answers with its own history only', async (t) => {
  // The tenant's very first request is a run by endpoint name: the example is there for it.
  t.equal(
    await answer(app, 'acme', 'alice', 'hello'),
    'You said: hello\nYour messages in this session so far:\n- hello',
  )
  t.equal(
    await answer(app, 'acme', 'bob', 'hi, I am Bob'),
    'You said: hi, I am Bob\nYour messages in this session so far:\n- hi, I am Bob',
  )
  t.equal(
    await answer(app, 'acme', 'alice', 'how are you?'),
    'You said: how are you?\nYour messages in this session so far:\n- hello\n- how are you?',
    "alice's history, without bob's message",
  )
  t.equal(
    await answer(app, 'acme', 'bob', 'bye'),
    'You said: bye\nYour messages in this session so far:\n- hi, I am Bob\n- bye',
    "bob's history, without alice's messages",
  )

  const flowId = exampleFlowId(MEMORY_ECHO, 'acme')
  const alice = await storedMessages('acme', flowId, 'alice')
  t.same(
    alice.map((m) => [m.sender, m.text.split('\n')[0]]),
    [
      ['User', 'hello'],
      ['Machine', 'You said: hello'],
      ['User', 'how are you?'],
      ['Machine', 'You said: how are you?'],
    ],
    "the monitor reads alice's session back: her messages and the answers, in order",
  )
  t.equal((await storedMessages('acme', flowId, 'bob')).length, 4)
})

t.test('a deleted example does not come back, not even after a restart', async (t) => {
  const [example] = await flowsOf(app, 'tidy')
  t.ok(example, 'seeded')
  const deleted = await app.inject({
    method: 'DELETE',
    url: `/api/v1/flows/${example?.id}`,
    headers: internalHeaders('tidy'),
  })
  t.equal(deleted.statusCode, 204)
  t.same(await flowsOf(app, 'tidy'), [], 'gone on the next request')
  t.equal((await run(app, 'tidy', 'memory-echo', { input_value: 'x' })).statusCode, 404)

  // What a restarted process starts with: a seeder that has seen nobody. The "seeded" row stops it.
  await new ExampleFlowSeeder(app.db, loadExampleFlows(builtInComponents)).ensureSeeded('tidy')
  t.same(await flowsOf(app, 'tidy'), [], 'a fresh seeder does not bring it back')

  if (backends.postgresUrl) {
    // A real second process on the same database (PGlite: one process owns the embedded database).
    const restarted = await buildTestApp(t, {
      messageStoreUrl: store.url,
      env: { ...NO_MODEL, DATABASE_SCHEMA: app.schema },
    })
    t.same(await flowsOf(restarted, 'tidy'), [], 'a restarted service does not bring it back')
    t.equal((await flowsOf(restarted, 'fresh')).length, 1, 'while a tenant it has never seen still gets it')
  }
})

t.test('another tenant gets its own copy, with its own id and its own messages', async (t) => {
  const [a] = await flowsOf(app, 'tenant-one')
  const [b] = await flowsOf(app, 'tenant-two')
  t.ok(a && b)
  t.not(a?.id, b?.id, 'flow ids are global, so each copy has its own')
  t.equal(a?.id, exampleFlowId(MEMORY_ECHO, 'tenant-one'))
  t.equal(b?.id, exampleFlowId(MEMORY_ECHO, 'tenant-two'))
  const foreign = await app.inject({
    method: 'GET',
    url: `/api/v1/flows/${a?.id}`,
    headers: internalHeaders('tenant-two'),
  })
  t.equal(foreign.statusCode, 404, "one tenant cannot read the other's copy")

  await answer(app, 'tenant-one', 'alice', 'secret of tenant one')
  t.equal(
    await answer(app, 'tenant-two', 'alice', 'hello'),
    'You said: hello\nYour messages in this session so far:\n- hello',
    'the same session ID in another tenant has its own history',
  )
  const removed = await app.inject({
    method: 'DELETE',
    url: `/api/v1/flows/${a?.id}`,
    headers: internalHeaders('tenant-one'),
  })
  t.equal(removed.statusCode, 204)
  t.equal((await flowsOf(app, 'tenant-two')).length, 1, "deleting one tenant's copy leaves the other's")
})

t.test('EXAMPLE_FLOWS=false seeds nothing', async (t) => {
  const plain = await buildTestApp(t, { messageStoreUrl: store.url, env: { ...NO_MODEL, EXAMPLE_FLOWS: 'false' } })
  t.same(await flowsOf(plain, 'plain'), [])
  const res = await run(plain, 'plain', 'memory-echo', { input_value: 'hi' })
  t.equal(res.statusCode, 404)
  t.equal(await seededRows(plain, 'plain'), 0, 'not even marked: turning examples on later still gives them')
})

t.test('concurrent first requests of one tenant seed exactly once', async (t) => {
  const responses = await Promise.all([
    ...Array.from({ length: 8 }, () => listFlows(app, 'rush')),
    ...Array.from({ length: 4 }, (_, i) =>
      run(app, 'rush', 'memory-echo', { input_value: `m${i}`, session_id: `s${i}` }),
    ),
  ])
  t.same(
    responses.map((res) => res.statusCode),
    Array.from({ length: 12 }, () => 200),
  )
  for (const res of responses.slice(0, 8)) t.equal((res.json() as StoredFlow[]).length, 1, 'every list sees one copy')
  const { rows } = await app.db.query('SELECT id::text AS id FROM flows WHERE tenant_id = $1', ['rush'])
  t.same(rows, [{ id: exampleFlowId(MEMORY_ECHO, 'rush') }], 'one flow stored')
  t.equal(await seededRows(app, 'rush'), 1)
})

t.test('two replicas on one database seed a tenant once', async (t) => {
  if (!backends.postgresUrl) {
    t.comment('PGlite: one process owns the embedded database; there are no replicas to race')
    return
  }
  const two = await buildTestApp(t, { messageStoreUrl: store.url, env: { ...NO_MODEL, DATABASE_SCHEMA: app.schema } })
  const lists = await Promise.all([app, two, app, two].map((replica) => listFlows(replica, 'shared')))
  for (const res of lists) t.equal((res.json() as StoredFlow[]).length, 1)
  const { rows } = await app.db.query('SELECT count(*)::int AS n FROM flows WHERE tenant_id = $1', ['shared'])
  t.same(rows, [{ n: 1 }])
})

t.test('a copy whose endpoint name the tenant already uses is skipped, not an error', async (t) => {
  // A tenant from before the examples existed may have its own `memory-echo`.
  const examples = loadExampleFlows(builtInComponents)
  await createFlow(app.db, 'veteran', { name: 'mine', description: null, endpoint_name: 'memory-echo', data: {} })
  t.equal(await seedExampleFlows(app.db, 'veteran', examples), 0)
  const { rows } = await app.db.query<{ name: string }>('SELECT name FROM flows WHERE tenant_id = $1', ['veteran'])
  t.same(rows, [{ name: 'mine' }])
  t.equal(await seedExampleFlows(app.db, 'veteran', examples), 0, 'and marked: never tried again')
  t.equal(await seedExampleFlows(app.db, 'newbie', examples), 1)
  t.equal(await seedExampleFlows(app.db, 'newbie', examples), 0, 'once per tenant')
})
