import { Type } from '@sinclair/typebox'
import Fastify, { type InjectOptions } from 'fastify'
import t from 'tap'
import { commonErrors, errorEnvelope, frameworkErrors, internalAuth, validation } from '../src/index.js'

const Errors = commonErrors('KIT')
const TOKEN = 'kit-internal-token-0123456789'

async function build() {
  const app = Fastify({ logger: false, bodyLimit: 1024, frameworkErrors: frameworkErrors(Errors) })
  await app.register(validation)
  await app.register(errorEnvelope, {
    prefix: 'KIT',
    errors: Errors,
    bodyLimit: 1024,
    mapError: (err) => (err.message === 'domain' ? new Errors.BadRequest('mapped') : undefined),
  })
  await app.register(internalAuth, { internalToken: TOKEN, errors: Errors })
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireInternalCaller)
    scope.post(
      '/echo/:id',
      {
        schema: {
          params: Type.Object({ id: Type.String({ maxLength: 5 }) }),
          body: Type.Object({ n: Type.Integer() }),
        },
      },
      async (request) => ({ tenant: request.tenant, n: (request.body as { n: number }).n }),
    )
    scope.get('/fail/:kind', async (request) => {
      const { kind } = request.params as { kind: string }
      if (kind === 'domain') throw new Error('domain')
      if (kind === 'db') throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
      throw new Error('secret internals')
    })
  })
  t.teardown(() => app.close())
  return app
}

const headers = { 'x-internal-token': TOKEN, 'x-tenant-id': 'acme' }

t.test('the internal caller check: token, then tenant', async (t) => {
  const app = await build()
  const ok = await app.inject({ method: 'POST', url: '/echo/a', headers, payload: { n: 1 } })
  t.same(ok.json(), { tenant: 'acme', n: 1 })
  const noToken = await app.inject({ method: 'POST', url: '/echo/a', payload: { n: 1 } })
  t.same([noToken.statusCode, noToken.json().code], [401, 'KIT_UNAUTHORIZED'])
  const wrong = await app.inject({ method: 'POST', url: '/echo/a', headers: { ...headers, 'x-internal-token': 'x' } })
  t.equal(wrong.statusCode, 401)
  const noTenant = await app.inject({ method: 'POST', url: '/echo/a', headers: { 'x-internal-token': TOKEN } })
  t.same([noTenant.statusCode, noTenant.json().code], [400, 'KIT_MISSING_TENANT'])
})

t.test('every error is the envelope, with the service prefix', async (t) => {
  const app = await build()
  const cases: Array<[string, InjectOptions, number, string]> = [
    [
      'wrong type, never coerced',
      { method: 'POST', url: '/echo/a', headers, payload: { n: '1' } },
      422,
      'KIT_VALIDATION',
    ],
    ['long param', { method: 'POST', url: '/echo/abcdef', headers, payload: { n: 1 } }, 422, 'KIT_VALIDATION'],
    [
      'malformed JSON',
      { method: 'POST', url: '/echo/a', headers: { ...headers, 'content-type': 'application/json' }, payload: '{' },
      400,
      'KIT_BAD_REQUEST',
    ],
    [
      'too large',
      { method: 'POST', url: '/echo/a', headers, payload: { n: 1, pad: 'x'.repeat(2000) } },
      413,
      'KIT_PAYLOAD_TOO_LARGE',
    ],
    [
      'not JSON',
      {
        method: 'POST',
        url: '/echo/a',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'n=1',
      },
      415,
      'KIT_UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'bad percent-encoding',
      { method: 'POST', url: '/echo/%E0%A4%A', headers, payload: { n: 1 } },
      400,
      'KIT_BAD_REQUEST',
    ],
    ['domain error', { method: 'GET', url: '/fail/domain', headers }, 400, 'KIT_BAD_REQUEST'],
    ['database gone', { method: 'GET', url: '/fail/db', headers }, 503, 'KIT_UNAVAILABLE'],
    ['unknown route', { method: 'GET', url: '/nowhere', headers }, 404, 'KIT_ROUTE_NOT_FOUND'],
  ]
  for (const [name, request, status, code] of cases) {
    const res = await app.inject(request)
    t.same([res.statusCode, res.json().code], [status, code], name)
    t.type(res.json().detail, 'string')
  }
  const hidden = await app.inject({ method: 'GET', url: '/fail/other', headers })
  t.same(hidden.json(), { detail: 'Internal server error', code: 'KIT_INTERNAL' }, '5xx details are not shown')
})
