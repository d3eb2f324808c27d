import { randomUUID } from 'node:crypto'
import t from 'tap'
import { exampleFlowId, loadExampleFlows } from '../src/domain/example-flows.js'
import { builtInComponents } from '../src/engine/index.js'
import { buildTestApp, internalHeaders, startMessageStore, storageKind } from './helpers/app.js'
import { FIXTURES, type FlowJson, fixture } from './helpers/flows.js'

t.comment(`storage: ${storageKind}`)

type Fixture = keyof typeof FIXTURES
const names = Object.keys(FIXTURES) as Fixture[]

interface StoredFlow {
  id: string
  name: string
  description: string | null
  endpoint_name: string | null
  data: FlowJson['data']
  created_at: string
  updated_at: string
  original_id?: string
}

/** A list of the tenant's flows without its copies of the built-in examples (see example-flows.test.ts). */
function withoutExamples(flows: StoredFlow[], tenant = 'tenant-a'): StoredFlow[] {
  const examples = new Set(loadExampleFlows(builtInComponents).map((example) => exampleFlowId(example.id, tenant)))
  return flows.filter((flow) => !examples.has(flow.id))
}

/** A minimal valid flow: ChatInput → ChatOutput. */
function tinyFlow(overrides: Record<string, unknown> = {}) {
  const node = (id: string, type: string) => ({ id, data: { id, type, node: { template: {} } } })
  return {
    name: 'tiny',
    data: {
      nodes: [node('ChatInput-1', 'ChatInput'), node('ChatOutput-1', 'ChatOutput')],
      edges: [
        {
          id: 'e1',
          data: {
            sourceHandle: { id: 'ChatInput-1', name: 'message' },
            targetHandle: { id: 'ChatOutput-1', fieldName: 'input_value' },
          },
        },
      ],
    },
    ...overrides,
  }
}

t.test('the three Langflow fixtures import unchanged and keep their ids', async (t) => {
  const app = await buildTestApp(t)
  for (const name of names) {
    const json = fixture(name)
    const res = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(), payload: json })
    t.equal(res.statusCode, 201, `${name}: ${res.body.slice(0, 300)}`)
    const flow = res.json() as StoredFlow
    t.equal(flow.id, json.id, `${name}: the file's id is kept`)
    t.equal(flow.original_id, undefined, `${name}: no original_id when the id is kept`)
    t.equal(flow.name, (json as unknown as { name: string }).name)
    t.strictSame(flow.data, json.data, `${name}: data stored as given`)
    t.match(flow.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  }
  const list = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders() })
  t.equal(list.statusCode, 200)
  t.same(
    withoutExamples(list.json())
      .map((f) => f.id)
      .sort(),
    names.map((n) => fixture(n).id).sort(),
  )
  const one = await app.inject({
    method: 'GET',
    url: `/api/v1/flows/${fixture('memory').id}`,
    headers: internalHeaders(),
  })
  t.equal(one.statusCode, 200)
  t.strictSame((one.json() as StoredFlow).data, fixture('memory').data)
  const noSlash = await app.inject({ method: 'GET', url: '/api/v1/flows', headers: internalHeaders() })
  t.equal(noSlash.statusCode, 200, 'the list answers without the trailing slash too')
})

t.test('an id taken here or by another tenant: a new id, and original_id says which', async (t) => {
  const app = await buildTestApp(t)
  const json = fixture('simple')
  const first = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders('tenant-a'),
    payload: json,
  })
  t.equal(first.statusCode, 201)

  const other = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders('tenant-b'),
    payload: json,
  })
  t.equal(other.statusCode, 201)
  const moved = other.json() as StoredFlow
  t.not(moved.id, json.id, "another tenant's id is never reused")
  t.equal(moved.original_id, json.id)

  const again = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders('tenant-a'),
    payload: json,
  })
  t.equal(again.statusCode, 201)
  const second = again.json() as StoredFlow
  t.not(second.id, json.id, 'a second import in the same tenant gets a new id too')
  t.equal(second.original_id, json.id)

  const original = await app.inject({
    method: 'GET',
    url: `/api/v1/flows/${json.id}`,
    headers: internalHeaders('tenant-b'),
  })
  t.equal(original.statusCode, 404, "tenant-b cannot read tenant-a's flow through the original id")

  const noId = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(),
    payload: tinyFlow(),
  })
  t.equal(noId.statusCode, 201)
  t.match((noId.json() as StoredFlow).id, /^[0-9a-f-]{36}$/, 'a flow without an id gets one')
})

t.test('an invalid flow is a 422 listing every problem by node id', async (t) => {
  const app = await buildTestApp(t)
  const json = fixture('simple') as unknown as { data: { nodes: Array<{ id: string; data: { type: string } }> } }
  const [a, b] = json.data.nodes.filter((n) => n.data.type === 'ChatInput' || n.data.type === 'TextInput')
  if (!a || !b) throw new Error('fixture changed')
  a.data.type = 'PythonFunction'
  b.data.type = 'AgentComponent'
  const res = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(), payload: json })
  t.equal(res.statusCode, 422)
  const body = res.json() as { detail: string; code: string; problems: Array<Record<string, unknown>> }
  t.equal(body.code, 'RUNSVC_FLOW_INVALID')
  const unknown = body.problems.filter((p) => p.kind === 'unknown-component')
  t.same(
    unknown.map((p) => [p.node_id, p.component_type]).sort(),
    [
      [a.id, 'PythonFunction'],
      [b.id, 'AgentComponent'],
    ].sort(),
    'both unsupported nodes, with their types',
  )
  t.match(body.detail, a.id)
  t.match(body.detail, b.id)

  const broken = tinyFlow()
  broken.data.edges.push({
    id: 'e2',
    data: {
      sourceHandle: { id: 'Ghost-1', name: 'message' },
      targetHandle: { id: 'ChatOutput-1', fieldName: 'nope' },
    },
  })
  const res2 = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(), payload: broken })
  t.equal(res2.statusCode, 422)
  t.match((res2.json() as { problems: unknown[] }).problems, [
    { kind: 'missing-node', node_id: 'Ghost-1', edge_id: 'e2' },
  ])

  const list = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders() })
  t.same(withoutExamples(list.json()), [], 'nothing stored')
})

t.test('a duplicate endpoint_name within a tenant is a 409; other tenants may use it', async (t) => {
  const app = await buildTestApp(t)
  const post = (tenant: string, payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(tenant), payload })
  t.equal((await post('tenant-a', tinyFlow({ endpoint_name: 'support-bot' }))).statusCode, 201)
  const dup = await post('tenant-a', tinyFlow({ name: 'other', endpoint_name: 'support-bot' }))
  t.equal(dup.statusCode, 409)
  t.equal(dup.json().code, 'RUNSVC_ENDPOINT_NAME_CONFLICT')
  t.equal((await post('tenant-b', tinyFlow({ endpoint_name: 'support-bot' }))).statusCode, 201, 'per tenant')
  t.equal((await post('tenant-a', tinyFlow({ endpoint_name: null }))).statusCode, 201, 'null: no name')
  t.equal((await post('tenant-a', tinyFlow({ endpoint_name: null }))).statusCode, 201, 'many flows without one')
  const empty = await post('tenant-a', tinyFlow({ endpoint_name: '' }))
  t.equal(empty.json().endpoint_name, null, '"" means no endpoint name')

  const second = (await post('tenant-a', tinyFlow({ endpoint_name: 'second' }))).json() as StoredFlow
  const patch = await app.inject({
    method: 'PATCH',
    url: `/api/v1/flows/${second.id}`,
    headers: internalHeaders('tenant-a'),
    payload: { endpoint_name: 'support-bot' },
  })
  t.equal(patch.statusCode, 409, 'renaming onto a taken name is a 409 too')

  const uuidName = await post('tenant-a', tinyFlow({ endpoint_name: randomUUID() }))
  t.equal(uuidName.statusCode, 422, 'a UUID cannot be an endpoint name')
  const badName = await post('tenant-a', tinyFlow({ endpoint_name: 'has space' }))
  t.equal(badName.statusCode, 422)
})

t.test('PATCH changes only the given fields and re-validates data', async (t) => {
  const app = await buildTestApp(t)
  const created = (
    await app.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers: internalHeaders(),
      payload: tinyFlow({ description: 'before', endpoint_name: 'tiny' }),
    })
  ).json() as StoredFlow
  const patch = (payload: Record<string, unknown>, tenant = 'tenant-a') =>
    app.inject({ method: 'PATCH', url: `/api/v1/flows/${created.id}`, headers: internalHeaders(tenant), payload })

  const renamed = await patch({ name: 'renamed' })
  t.equal(renamed.statusCode, 200)
  t.match(renamed.json(), { id: created.id, name: 'renamed', description: 'before', endpoint_name: 'tiny' })
  t.strictSame(renamed.json().data, created.data)
  t.ok(renamed.json().updated_at >= created.updated_at)
  t.equal(renamed.json().created_at, created.created_at)

  const cleared = await patch({ description: null, endpoint_name: null })
  t.match(cleared.json(), { name: 'renamed', description: null, endpoint_name: null })

  const simple = fixture('simple')
  const newData = await patch({ data: simple.data })
  t.equal(newData.statusCode, 200)
  t.strictSame(newData.json().data, simple.data)

  const invalid = await patch({ data: { nodes: [{ id: 'X-1', data: { type: 'Nope' } }], edges: [] } })
  t.equal(invalid.statusCode, 422)
  t.match(invalid.json().problems, [{ kind: 'unknown-component', node_id: 'X-1', component_type: 'Nope' }])

  const unchanged = await patch({})
  t.equal(unchanged.statusCode, 200)
  t.strictSame(unchanged.json().data, simple.data, 'an empty patch changes nothing')

  t.equal((await patch({ name: 'x' }, 'tenant-b')).statusCode, 404, "another tenant's flow is a 404")
  t.equal((await patch({ name: 42 })).statusCode, 422, 'wrong type')
})

t.test('tenant isolation: every flows route answers 404 for a foreign flow, like a missing one', async (t) => {
  const store = await startMessageStore(t)
  const app = await buildTestApp(t, { messageStoreUrl: store.url })
  const created = (
    await app.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers: internalHeaders('tenant-a'),
      payload: tinyFlow(),
    })
  ).json() as StoredFlow
  const missing = randomUUID()
  for (const id of [created.id, missing]) {
    const url = `/api/v1/flows/${id}`
    const b = internalHeaders('tenant-b')
    for (const res of [
      await app.inject({ method: 'GET', url, headers: b }),
      await app.inject({ method: 'PATCH', url, headers: b, payload: { name: 'stolen' } }),
      await app.inject({ method: 'DELETE', url, headers: b }),
    ]) {
      t.equal(res.statusCode, 404)
      t.strictSame(res.json(), { detail: `Flow identifier ${id} not found`, code: 'RUNSVC_FLOW_NOT_FOUND' })
    }
  }
  const list = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders('tenant-b') })
  t.same(withoutExamples(list.json(), 'tenant-b'), [], "tenant-b's list is empty")
  const still = await app.inject({ method: 'GET', url: `/api/v1/flows/${created.id}`, headers: internalHeaders() })
  t.equal(still.statusCode, 200)
  t.equal(still.json().name, 'tiny', 'untouched by tenant-b')
})

t.test('DELETE removes the flow and its messages in the real message-store, and nothing else', async (t) => {
  const store = await startMessageStore(t)
  const app = await buildTestApp(t, { messageStoreUrl: store.url })
  const post = async (tenant: string) =>
    (
      await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(tenant), payload: tinyFlow() })
    ).json() as StoredFlow
  const doomed = await post('tenant-a')
  const kept = await post('tenant-a')
  const foreign = await post('tenant-b')
  const write = async (tenant: string, flowId: string) => {
    const res = await store.inject({
      method: 'POST',
      url: '/internal/messages/batch',
      headers: internalHeaders(tenant),
      payload: {
        messages: ['s1', 's2'].map((session) => ({
          id: randomUUID(),
          flow_id: flowId,
          session_id: session,
          sender: 'User',
          sender_name: 'User',
          text: `hello ${session}`,
        })),
      },
    })
    t.equal(res.statusCode, 201)
  }
  await write('tenant-a', doomed.id)
  await write('tenant-a', kept.id)
  await write('tenant-b', foreign.id)
  const messagesOf = async (tenant: string, flowId: string) =>
    (
      await store.inject({
        method: 'GET',
        url: '/api/v1/monitor/messages',
        headers: internalHeaders(tenant),
        query: { flow_id: flowId },
      })
    ).json() as unknown[]
  t.equal((await messagesOf('tenant-a', doomed.id)).length, 2)

  const res = await app.inject({ method: 'DELETE', url: `/api/v1/flows/${doomed.id}`, headers: internalHeaders() })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal((await messagesOf('tenant-a', doomed.id)).length, 0, "the flow's messages are gone")
  t.equal((await messagesOf('tenant-a', kept.id)).length, 2, "another flow's are kept")
  t.equal((await messagesOf('tenant-b', foreign.id)).length, 2, "another tenant's are kept")
  const get = await app.inject({ method: 'GET', url: `/api/v1/flows/${doomed.id}`, headers: internalHeaders() })
  t.equal(get.statusCode, 404, 'the flow is gone')
  const again = await app.inject({ method: 'DELETE', url: `/api/v1/flows/${doomed.id}`, headers: internalHeaders() })
  t.equal(again.statusCode, 404, 'a second delete is a 404')
})

t.test('DELETE with the message-store down: 503, and the flow stays (the call can be repeated)', async (t) => {
  const app = await buildTestApp(t, { messageStoreUrl: 'http://127.0.0.1:1' })
  const created = (
    await app.inject({ method: 'POST', url: '/api/v1/flows/', headers: internalHeaders(), payload: tinyFlow() })
  ).json() as StoredFlow
  const res = await app.inject({ method: 'DELETE', url: `/api/v1/flows/${created.id}`, headers: internalHeaders() })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'RUNSVC_MESSAGE_STORE_UNAVAILABLE')
  const get = await app.inject({ method: 'GET', url: `/api/v1/flows/${created.id}`, headers: internalHeaders() })
  t.equal(get.statusCode, 200, 'the flow is still there')
})

t.test('DELETE when the message-store refuses the call (a token mismatch): 502, and the flow stays', async (t) => {
  const store = await startMessageStore(t)
  const token = 'another-internal-token-0123456789'
  const app = await buildTestApp(t, { messageStoreUrl: store.url, env: { INTERNAL_TOKEN: token } })
  const headers = { ...internalHeaders(), 'x-internal-token': token }
  const created = (
    await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: tinyFlow() })
  ).json() as StoredFlow
  const res = await app.inject({ method: 'DELETE', url: `/api/v1/flows/${created.id}`, headers })
  t.equal(res.statusCode, 502)
  t.strictSame(res.json(), {
    detail: 'The message-store refused the request: 401 MSGSTORE_UNAUTHORIZED',
    code: 'RUNSVC_MESSAGE_STORE_FAILED',
  })
  const get = await app.inject({ method: 'GET', url: `/api/v1/flows/${created.id}`, headers })
  t.equal(get.statusCode, 200, 'the flow is still there')
})
