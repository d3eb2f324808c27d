import { Type } from '@sinclair/typebox'
import Fastify, { type InjectOptions } from 'fastify'
import t from 'tap'
import {
  commonErrors,
  type DatabaseErrorMeaning,
  errorEnvelope,
  frameworkErrors,
  internalAuth,
  validation,
} from '../src/index.js'

const Errors = commonErrors('KIT')
const TOKEN = 'kit-internal-token-0123456789'

/** Stands in for @session-runtime/db's `databaseErrorMeaning` (service-kit does not depend on the database). */
const databaseErrors = (err: Error): DatabaseErrorMeaning | undefined => {
  const { code } = err as { code?: string }
  if (code === 'ECONNREFUSED') return { kind: 'unavailable' }
  if (code === '22P05') return { kind: 'unstorable', detail: 'cannot store NUL' }
  return undefined
}

async function build(options: { databaseErrors?: typeof databaseErrors } = { databaseErrors }) {
  const app = Fastify({ logger: false, bodyLimit: 1024, frameworkErrors: frameworkErrors(Errors) })
  await app.register(validation)
  await app.register(errorEnvelope, {
    prefix: 'KIT',
    errors: Errors,
    bodyLimit: 1024,
    mapError: (err) => (err.message === 'domain' ? new Errors.BadRequest('mapped') : undefined),
    ...options,
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
      if (kind === 'nul') throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' })
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

t.test('database errors are mapped by the databaseErrors option, and only with it', async (t) => {
  const withDatabase = await build()
  const gone = await withDatabase.inject({ method: 'GET', url: '/fail/db', headers })
  t.same(
    gone.json(),
    { detail: 'Database unavailable: try again shortly', code: 'KIT_UNAVAILABLE' },
    'unavailable: a 503 that says so',
  )
  t.equal(gone.statusCode, 503)
  const nul = await withDatabase.inject({ method: 'GET', url: '/fail/nul', headers })
  t.same([nul.statusCode, nul.json()], [422, { detail: 'cannot store NUL', code: 'KIT_VALIDATION' }], 'unstorable: 422')
  const other = await withDatabase.inject({ method: 'GET', url: '/fail/other', headers })
  t.same([other.statusCode, other.json().code], [500, 'KIT_INTERNAL'], 'anything else: still a 500')

  const without = await build({})
  for (const kind of ['db', 'nul']) {
    const res = await without.inject({ method: 'GET', url: `/fail/${kind}`, headers })
    t.same([res.statusCode, res.json()], [500, { detail: 'Internal server error', code: 'KIT_INTERNAL' }], kind)
  }
})
