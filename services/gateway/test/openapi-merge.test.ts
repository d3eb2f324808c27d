import t from 'tap'
import { type DownstreamPart, mergeOpenApi, type OpenApiDocument } from '../src/domain/openapi/merge.js'
import { openApiProblems } from './helpers/openapi.js'

const info = { title: 'API', version: '1.0.0', description: 'The API.' }
const ok = (description = 'Default Response', schema?: unknown) => ({
  description,
  ...(schema ? { content: { 'application/json': { schema } } } : {}),
})

const gateway: OpenApiDocument = {
  openapi: '3.1.0',
  info: { title: 'gateway', version: '0' },
  components: { schemas: {} },
  paths: { '/health': { get: { responses: { 200: ok() } } } },
  tags: [{ name: 'Gateway' }],
}

const message = { type: 'object', title: 'Message', properties: { id: { type: 'string' } } }

function runService(): DownstreamPart {
  return {
    name: 'run-service',
    prefixes: ['/api/v1/run', '/api/v1/flows'],
    document: {
      openapi: '3.1.0',
      info: { title: 'run-service', version: '0' },
      tags: [{ name: 'Run' }, { name: 'Flows' }],
      components: {
        schemas: {
          'def-0': message,
          Flow: {
            type: 'object',
            properties: { messages: { type: 'array', items: { $ref: '#/components/schemas/def-0' } } },
          },
        },
      },
      paths: {
        '/api/v1/run/{id}': {
          post: {
            tags: ['Run'],
            parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
            responses: {
              200: ok(undefined, { $ref: '#/components/schemas/Flow' }),
              401: ok('Missing internal token'),
              503: ok('Database unavailable'),
            },
          },
        },
        '/api/v1/flows/': { get: { responses: { 200: ok(undefined, { $ref: '#/components/schemas/def-0' }) } } },
        '/internal/secret': { get: { responses: { 200: ok() } } },
        '/api/v1/runner': { get: { responses: { 200: ok() } } },
      },
    },
  }
}

function messageStore(schemas: Record<string, unknown>): DownstreamPart {
  return {
    name: 'message-store',
    prefixes: ['/api/v1/monitor'],
    document: {
      openapi: '3.1.0',
      info: { title: 'message-store', version: '0' },
      tags: [{ name: 'Monitor' }, { name: 'Flows' }],
      components: { schemas },
      paths: {
        '/api/v1/monitor/messages': {
          get: { responses: { 200: ok(undefined, { type: 'array', items: { $ref: '#/components/schemas/def-0' } }) } },
        },
        '/health': { get: { responses: { 200: ok('the store') } } },
      },
    },
  }
}

const merge = (downstreams: DownstreamPart[]) => mergeOpenApi({ gateway, downstreams, apiKeyName: 'x-api-key', info })

t.test('paths: only each downstream’s proxied prefixes; the gateway’s own first; inputs untouched', async (t) => {
  const parts = [runService(), messageStore({ 'def-0': message })]
  const before = structuredClone(parts)
  const doc = merge(parts)
  t.same(openApiProblems(doc), [])
  t.same(Object.keys(doc.paths ?? {}), ['/health', '/api/v1/run/{id}', '/api/v1/flows/', '/api/v1/monitor/messages'])
  t.same(doc.paths?.['/health'], { get: { responses: { 200: { description: 'OK' } } } }, "the gateway's, open")
  t.same(parts, before, 'the downstream documents are not changed (they are cached)')
  t.same(doc.servers, [{ url: '/', description: 'This gateway' }])
  t.same(doc.info, info, 'nothing missing: no note')
  t.notOk(doc['x-missing-documents'])
  t.same(
    doc.tags?.map((tag) => tag.name),
    ['Gateway', 'Run', 'Flows', 'Monitor'],
    'tags merged once each',
  )
})

t.test('security and the gateway responses on every proxied operation', async (t) => {
  const doc = merge([runService()])
  t.same(doc.components?.securitySchemes, {
    ApiKeyHeader: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An API key' },
    ApiKeyQuery: {
      type: 'apiKey',
      in: 'query',
      name: 'x-api-key',
      description: 'The same key as the `?x-api-key=` query parameter (for clients that cannot set headers)',
    },
  })
  const run = doc.paths?.['/api/v1/run/{id}']?.post as { security: unknown; responses: Record<string, unknown> }
  t.same(run.security, [{ ApiKeyHeader: [] }, { ApiKeyQuery: [] }], 'header OR query')
  t.match(run.responses, {
    200: { description: 'OK' },
    401: {
      description: /x-api-key/,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/GatewayErrorEnvelope' } } },
    },
    403: { description: 'Unknown API key' },
    502: { description: 'The run-service failed' },
    503: { description: 'Database unavailable' },
    504: { description: 'The run-service timed out' },
  })
  t.notMatch(JSON.stringify(run.responses), /internal token/, "the service's own 401 is replaced")
  t.ok(doc.paths?.['/health']?.get)
  t.notOk(
    (doc.paths?.['/health']?.get as { security?: unknown } | undefined)?.security,
    'the gateway’s own routes are open',
  )
})

t.test('components: def-N named by title, identical ones shared, clashes renamed and refs rewritten', async (t) => {
  const shared = merge([runService(), messageStore({ 'def-0': message })])
  t.same(Object.keys(shared.components?.schemas ?? {}), ['GatewayErrorEnvelope', 'Message', 'Flow'])
  t.match(shared.paths?.['/api/v1/monitor/messages']?.get, {
    responses: {
      200: { content: { 'application/json': { schema: { items: { $ref: '#/components/schemas/Message' } } } } },
    },
  })
  t.match(shared.components?.schemas?.Flow, {
    properties: { messages: { items: { $ref: '#/components/schemas/Message' } } },
  })

  const other = { type: 'object', title: 'Message', properties: { other: { type: 'integer' } } }
  const clash = merge([runService(), messageStore({ 'def-0': other, Flow: { type: 'string' } })])
  t.same(openApiProblems(clash), [])
  t.same(Object.keys(clash.components?.schemas ?? {}), [
    'GatewayErrorEnvelope',
    'Message',
    'Flow',
    'message-store.Message',
    'message-store.Flow',
  ])
  t.same(clash.components?.schemas?.['message-store.Message'], other)
  t.match(clash.paths?.['/api/v1/monitor/messages']?.get, {
    responses: {
      200: {
        content: { 'application/json': { schema: { items: { $ref: '#/components/schemas/message-store.Message' } } } },
      },
    },
  })
  t.match(clash.paths?.['/api/v1/flows/']?.get, {
    responses: { 200: { content: { 'application/json': { schema: { $ref: '#/components/schemas/Message' } } } } },
  })
})

t.test('a component that looks identical but refers to a renamed one is not shared', async (t) => {
  const ref = { type: 'object', properties: { m: { $ref: '#/components/schemas/def-0' } } }
  const first = runService()
  first.document = { ...(first.document as OpenApiDocument) }
  first.document.components = { schemas: { ...first.document.components?.schemas, Holder: ref } }
  const other = { type: 'object', title: 'Message', properties: { other: { type: 'integer' } } }
  const doc = merge([first, messageStore({ 'def-0': other, Holder: ref })])
  t.same(openApiProblems(doc), [])
  t.match(doc.components?.schemas, {
    Holder: { properties: { m: { $ref: '#/components/schemas/Message' } } },
    'message-store.Holder': { properties: { m: { $ref: '#/components/schemas/message-store.Message' } } },
  })
})

t.test('two def-N of one document with the same title keep apart', async (t) => {
  const other = { type: 'object', title: 'Message', properties: { other: { type: 'integer' } } }
  const doc = merge([messageStore({ 'def-0': message, 'def-1': other })])
  t.same(openApiProblems(doc), [])
  t.same(doc.components?.schemas?.Message, message)
  t.same(doc.components?.schemas?.['def-1'], other)
})

t.test('a missing downstream: the rest, and a note saying what is missing and why', async (t) => {
  const doc = merge([runService(), { name: 'message-store', prefixes: ['/api/v1/monitor'], error: 'ECONNREFUSED' }])
  t.same(openApiProblems(doc), [])
  t.ok(doc.paths?.['/api/v1/run/{id}'])
  t.notOk(doc.paths?.['/api/v1/monitor/messages'])
  t.same(doc['x-missing-documents'], [{ service: 'message-store', error: 'ECONNREFUSED' }])
  t.match(
    doc.info.description,
    /^The API\.\n\n\*\*Incomplete document:\*\* the message-store's routes \(\/api\/v1\/monitor\) are missing \(ECONNREFUSED\)/,
  )
  const none = merge([])
  t.same(Object.keys(none.paths ?? {}), ['/health'], 'no downstream at all: the gateway alone')
})
