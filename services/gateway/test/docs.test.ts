import { createServer } from 'node:net'
import t from 'tap'
import { openApiProblems } from './helpers/openapi.js'
import { KEY_A, startStack } from './helpers/stack.js'

type Operation = {
  tags?: string[]
  summary?: string
  security?: Record<string, string[]>[]
  parameters?: { name: string; in: string; schema?: Record<string, unknown> }[]
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> }
  responses: Record<string, { description: string; content?: Record<string, { schema: Record<string, unknown> }> }>
}
type Doc = {
  openapi: string
  info: { title: string; description: string }
  servers: { url: string }[]
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, Record<string, string>> }
  'x-missing-documents'?: { service: string; error: string }[]
}

/** A port nothing listens on (fetch refuses some, like 1, before trying). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

const API_KEY_SECURITY = [{ ApiKeyHeader: [] }, { ApiKeyQuery: [] }]
const operations = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op })),
  )

t.test('the whole stack up: /docs and one merged document, without an API key', async (t) => {
  const { gateway } = await startStack(t)

  const page = await gateway.inject({ url: '/docs' })
  t.equal(page.statusCode, 200, '/docs needs no key')
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger-ui-bundle\.js/)
  t.notMatch(page.body, /https?:\/\//, 'no CDN: every asset is served by the gateway')
  const asset = await gateway.inject({ url: '/docs/static/swagger-ui-bundle.js' })
  t.equal(asset.statusCode, 200, 'the UI assets need no key either')
  t.match(asset.headers['content-type'], /javascript/)

  const res = await gateway.inject({ url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json() as Doc
  t.same(openApiProblems(doc), [], 'structurally sound: every $ref resolves, path parameters declared, …')
  t.match(doc.openapi, /^3\.1\./)
  t.same(doc.servers, [{ url: '/', description: 'This gateway' }])
  t.notOk(doc['x-missing-documents'], 'nothing missing')
  t.notMatch(doc.info.description, /Incomplete/)

  const paths = Object.keys(doc.paths).sort()
  t.same(
    paths.filter((path) => path.startsWith('/internal') || path.includes('openapi') || path === '/metrics'),
    [],
    'no internal path',
  )
  t.same(
    paths.filter((path) => !path.startsWith('/api/v1/')),
    ['/health', '/ready'],
    "the gateway's own routes",
  )
  for (const path of [
    '/api/v1/run/{flow_id_or_endpoint_name}',
    '/api/v1/responses',
    '/api/v1/flows/',
    '/api/v1/flows/{id}',
    '/api/v1/monitor/messages',
    '/api/v1/monitor/messages/search',
    '/api/v1/monitor/sessions',
    '/api/v1/monitor/retention',
    '/api/v1/monitor/retention/sweep',
    '/api/v1/monitor/sessions/{session_id}/fork',
    '/api/v1/monitor/feedback',
  ]) {
    t.ok(doc.paths[path], `${path} is documented`)
  }

  // the security: both ways of passing the key, on every proxied operation and nowhere else
  t.same(doc.components.securitySchemes.ApiKeyHeader, {
    type: 'apiKey',
    in: 'header',
    name: 'x-api-key',
    description: 'An API key',
  })
  t.match(doc.components.securitySchemes.ApiKeyQuery, { type: 'apiKey', in: 'query', name: 'x-api-key' })
  for (const { path, method, op } of operations(doc)) {
    if (path.startsWith('/api/v1/')) {
      t.same(op.security, API_KEY_SECURITY, `${method} ${path} needs the key`)
      t.match(op.responses['401']?.description, /x-api-key/, `${method} ${path}: 401 is the missing key`)
      t.ok(op.responses['403'], `${method} ${path}: 403 is an unknown key`)
      t.ok(op.tags?.length, `${method} ${path} is tagged`)
      t.ok(op.summary, `${method} ${path} has a summary`)
    } else {
      t.notOk(op.security, `${method} ${path} is open`)
    }
  }

  // request and response schemas came from the route schemas
  const run = doc.paths['/api/v1/run/{flow_id_or_endpoint_name}']?.post as Operation
  t.same(run.tags, ['Run'])
  t.match(run.parameters, [
    { name: 'stream', in: 'query' },
    { name: 'flow_id_or_endpoint_name', in: 'path' },
  ])
  t.match(run.requestBody?.content['application/json']?.schema, { type: 'object', properties: { input_value: {} } })
  t.match(run.responses['200']?.content?.['application/json']?.schema, {
    type: 'object',
    required: ['session_id', 'outputs'],
  })
  t.match(run.responses['404']?.content?.['application/json']?.schema, { properties: { detail: {}, code: {} } })
  // one run at a time per session (issue 15): the strategy in the body, the 409 of `reject`
  const runBody = run.requestBody?.content['application/json']?.schema as
    | { properties?: Record<string, unknown> }
    | undefined
  const strategy = JSON.stringify(runBody?.properties?.multitask_strategy ?? null)
  t.match(strategy, /"enqueue"/, 'multitask_strategy: enqueue…')
  t.match(strategy, /"reject"/, '…or reject')
  t.match(run.responses['409']?.content?.['application/json']?.schema, { properties: { detail: {}, code: {} } })

  const importFlow = doc.paths['/api/v1/flows/']?.post as Operation
  t.same(importFlow.tags, ['Flows'])
  t.match(importFlow.requestBody?.content['application/json']?.schema, { required: ['name', 'data'] })
  t.match(importFlow.responses['201']?.content?.['application/json']?.schema, { properties: { id: {}, name: {} } })
  t.equal(importFlow.responses['201']?.description, 'Created')

  const messages = doc.paths['/api/v1/monitor/messages']?.get as Operation
  t.same(messages.tags, ['Monitor'])
  t.match(
    messages.parameters?.map((p) => `${p.in}:${p.name}`),
    ['query:flow_id', 'query:session_id'],
  )
  const list = messages.responses['200']
  t.match(list?.content?.['application/json']?.schema, {
    type: 'array',
    items: { $ref: '#/components/schemas/Message' },
  })
  t.match(list, { headers: { 'x-next-cursor': { schema: { type: 'string' } } } })
  t.match(doc.components.schemas.Message, { type: 'object', properties: { id: {}, session_id: {}, text: {} } })
  t.ok(doc.paths['/api/v1/monitor/messages']?.delete?.requestBody, 'DELETE messages documents its body')

  const yaml = await gateway.inject({ url: '/docs/yaml' })
  t.equal(yaml.statusCode, 200)
  t.match(yaml.body, /\/api\/v1\/monitor\/messages:/, 'the YAML is the same merged document')

  // what the document promises holds: a proxied path needs the key, the gateway's own do not
  t.equal((await gateway.inject({ url: '/api/v1/flows/' })).statusCode, 401)
  t.equal((await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': KEY_A } })).statusCode, 200)
})

t.test('a downstream that is down: still 200, with the others and a note', async (t) => {
  const { gateway } = await startStack(t, { env: { MESSAGE_STORE_URL: `http://127.0.0.1:${await closedPort()}` } })
  const res = await gateway.inject({ url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json() as Doc
  t.same(openApiProblems(doc), [])
  t.ok(doc.paths['/api/v1/flows/'], "the run-service's paths are there")
  t.ok(doc.paths['/api/v1/run/{flow_id_or_endpoint_name}'])
  t.same(
    Object.keys(doc.paths).filter((path) => path.startsWith('/api/v1/monitor')),
    [],
    "the message-store's are not",
  )
  t.match(doc['x-missing-documents'], [{ service: 'message-store', error: 'ECONNREFUSED' }])
  t.match(doc.info.description, /Incomplete document:.*message-store.*\/api\/v1\/monitor/)
  t.equal((await gateway.inject({ url: '/docs' })).statusCode, 200, 'the UI too')
})
