// The limits through the gateway (issue 6, "Limits"): the gateway's own body limit (by Content-Length: a body of
// exactly GATEWAY_BODY_LIMIT_BYTES is forwarded, one byte more is its 413), and every limit error of the services
// reaches the caller unchanged — the same status and the same `{ detail, code }` as the service answers directly.
import { readFileSync } from 'node:fs'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { INTERNAL_TOKEN, KEY_A, startStack } from './helpers/stack.js'

// On embedded PGlite (no TEST_DATABASE_URL) the stack takes seconds to boot.
t.setTimeout(180_000)

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixtures}/${name}.json`, 'utf8'))

const GATEWAY_LIMIT = 64 * 1024
const { gateway, runService, store } = await startStack(t, {
  env: { GATEWAY_BODY_LIMIT_BYTES: String(GATEWAY_LIMIT) },
  runServiceEnv: {
    FLOWS_BODY_LIMIT_BYTES: String(32 * 1024),
    FLOW_MAX_NODES: '3',
    FLOW_MAX_EDGES: '2',
    RUN_INPUT_MAX_CHARS: '10',
    RUN_TWEAKS_MAX_DEPTH: '3',
    RUN_TWEAKS_MAX_KEYS: '5',
    EXAMPLE_FLOWS: 'false',
  },
  storeEnv: { BODY_LIMIT_BYTES: '8192' },
})

const json = (opts: InjectOptions) => (opts.payload === undefined ? {} : { 'content-type': 'application/json' })
const viaGateway = (opts: InjectOptions) =>
  gateway.inject({ ...opts, headers: { ...json(opts), 'x-api-key': KEY_A, ...opts.headers } })
/** The same request straight to the service, as the gateway would forward it for tenant-a. */
const direct = (service: typeof runService | typeof store, opts: InjectOptions) =>
  service.inject({
    ...opts,
    headers: { ...json(opts), [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN, [TENANT_HEADER]: 'tenant-a', ...opts.headers },
  })

const simple = () => {
  const { data } = fixture('langflow-simple-api-test')
  return { name: 'simple', data } // 3 nodes, 2 edges, ~21 KB
}
const created = await viaGateway({ method: 'POST', url: '/api/v1/flows/', payload: JSON.stringify(simple()) })
t.equal(created.statusCode, 201, 'a flow at the node and edge limits is imported through the gateway')
const flowId = created.json().id as string

t.test('GATEWAY_BODY_LIMIT_BYTES: exactly the limit is forwarded, one byte more is the gateway’s 413', async (t) => {
  // a run padded by a top-level tweak that no node has (ignored by the run)
  const padded = (bytes: number) => {
    const shell = JSON.stringify({ input_value: 'hi', tweaks: { pad: '' } })
    return JSON.stringify({ input_value: 'hi', tweaks: { pad: 'x'.repeat(bytes - shell.length) } })
  }
  const ok = await viaGateway({ method: 'POST', url: `/api/v1/run/${flowId}`, payload: padded(GATEWAY_LIMIT) })
  t.equal(ok.statusCode, 200, ok.body.slice(0, 200))
  t.equal(ok.json().outputs[0].inputs.input_value, 'hi')
  const over = await viaGateway({ method: 'POST', url: `/api/v1/run/${flowId}`, payload: padded(GATEWAY_LIMIT + 1) })
  t.equal(over.statusCode, 413)
  t.strictSame(over.json(), {
    detail: `Request body is larger than the limit of ${GATEWAY_LIMIT} bytes`,
    code: 'GATEWAY_PAYLOAD_TOO_LARGE',
  })
})

t.test('every limit error of the services passes through the gateway unchanged', async (t) => {
  const withNote = simple()
  withNote.data.nodes.push({ id: 'note-1', type: 'noteNode', data: { id: 'note-1', node: {} } })
  const withEdge = simple()
  withEdge.data.edges.push({ ...withEdge.data.edges[0], id: 'copy' })
  const basic = { name: 'basic', data: fixture('langflow-basic-prompting').data } // ~47 KB
  const run = (payload: string) => ({ method: 'POST' as const, url: `/api/v1/run/${flowId}`, payload })
  const runJson = (body: unknown) => run(JSON.stringify(body))
  const cases: Array<{
    name: string
    service: typeof runService | typeof store
    req: InjectOptions
    status: number
    code: string
  }> = [
    {
      name: 'FLOWS_BODY_LIMIT_BYTES',
      service: runService,
      req: { method: 'POST', url: '/api/v1/flows/', payload: JSON.stringify(basic) },
      status: 413,
      code: 'RUNSVC_PAYLOAD_TOO_LARGE',
    },
    {
      name: 'FLOW_MAX_NODES',
      service: runService,
      req: { method: 'POST', url: '/api/v1/flows/', payload: JSON.stringify(withNote) },
      status: 413,
      code: 'RUNSVC_FLOW_TOO_MANY_NODES',
    },
    {
      name: 'FLOW_MAX_EDGES (on update)',
      service: runService,
      req: { method: 'PATCH', url: `/api/v1/flows/${flowId}`, payload: JSON.stringify({ data: withEdge.data }) },
      status: 413,
      code: 'RUNSVC_FLOW_TOO_MANY_EDGES',
    },
    {
      name: 'FLOW_MAX_DEPTH',
      service: runService,
      req: {
        method: 'POST',
        url: '/api/v1/flows/',
        payload: `{"name":"deep","data":{"nodes":[],"extra":${'['.repeat(5000)}${']'.repeat(5000)}}}`,
      },
      status: 422,
      code: 'RUNSVC_FLOW_TOO_DEEP',
    },
    {
      name: 'RUN_INPUT_MAX_CHARS',
      service: runService,
      req: runJson({ input_value: 'a'.repeat(11) }),
      status: 413,
      code: 'RUNSVC_INPUT_TOO_LARGE',
    },
    {
      name: 'RUN_TWEAKS_MAX_DEPTH',
      service: runService,
      req: runJson({ tweaks: { node: { field: { a: {} } } } }),
      status: 422,
      code: 'RUNSVC_TWEAKS_TOO_DEEP',
    },
    {
      name: 'RUN_TWEAKS_MAX_KEYS',
      service: runService,
      req: runJson({ tweaks: { x: [1, 2, 3, 4, 5] } }),
      status: 422,
      code: 'RUNSVC_TWEAKS_TOO_MANY_KEYS',
    },
    {
      name: 'session ID length (run)',
      service: runService,
      req: runJson({ input_value: 'hi', session_id: 'a'.repeat(256) }),
      status: 422,
      code: 'RUNSVC_VALIDATION',
    },
    {
      name: 'BODY_LIMIT_BYTES (monitor)',
      service: store,
      req: { method: 'DELETE', url: '/api/v1/monitor/messages', payload: `[${' '.repeat(8192)}]` },
      status: 413,
      code: 'MSGSTORE_PAYLOAD_TOO_LARGE',
    },
    {
      name: 'BODY_MAX_DEPTH (monitor edit)',
      service: store,
      req: {
        method: 'PUT',
        url: `/api/v1/monitor/messages/${flowId}`, // any UUID: the depth is checked first
        payload: `{"properties":{"x":${'['.repeat(3000)}${']'.repeat(3000)}}}`, // under the 8 KiB body limit
      },
      status: 422,
      code: 'MSGSTORE_BODY_TOO_DEEP',
    },
    {
      name: 'page size of messages',
      service: store,
      req: { method: 'GET', url: '/api/v1/monitor/messages?limit=1001' },
      status: 422,
      code: 'MSGSTORE_VALIDATION',
    },
    {
      name: 'page size of sessions',
      service: store,
      req: { method: 'GET', url: '/api/v1/monitor/sessions?limit=501' },
      status: 422,
      code: 'MSGSTORE_VALIDATION',
    },
    {
      name: 'sessions per bulk delete',
      service: store,
      req: {
        method: 'DELETE',
        url: '/api/v1/monitor/messages/sessions',
        payload: JSON.stringify(Array.from({ length: 501 }, (_, i) => `s${i}`)),
      },
      status: 400,
      code: 'MSGSTORE_TOO_MANY_SESSIONS',
    },
    {
      name: 'session ID length (monitor path)',
      service: store,
      req: { method: 'DELETE', url: `/api/v1/monitor/messages/session/${'a'.repeat(256)}` },
      status: 422,
      code: 'MSGSTORE_VALIDATION',
    },
  ]
  for (const c of cases) {
    const through = await viaGateway(c.req)
    const straight = await direct(c.service, c.req)
    t.equal(straight.statusCode, c.status, `${c.name}: the service answers ${c.status}`)
    t.equal(straight.json().code, c.code, `${c.name}: ${c.code}`)
    t.equal(through.statusCode, straight.statusCode, `${c.name}: the same status through the gateway`)
    t.strictSame(through.json(), straight.json(), `${c.name}: the same body through the gateway`)
  }

  // just under each: accepted through the gateway
  const accepted = [
    runJson({ input_value: '😀'.repeat(10), session_id: '😀'.repeat(255) }),
    runJson({ input_value: 'hi', tweaks: { node: { field: { a: 1 } }, x: [1] } }), // 3 levels, 5 keys and items
    { method: 'GET' as const, url: '/api/v1/monitor/messages?limit=1000' },
    { method: 'GET' as const, url: '/api/v1/monitor/sessions?limit=500' },
  ]
  for (const req of accepted) t.equal((await viaGateway(req)).statusCode, 200, `${req.method} ${req.url}`)
})
