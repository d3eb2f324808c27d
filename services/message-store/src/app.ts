import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { databaseErrorMeaning } from '@session-runtime/db'
import {
  errorEnvelope,
  exceedsJsonLimits,
  internalAuth,
  openapi,
  serviceServerOptions,
  validation,
} from '@session-runtime/service-kit'
import Fastify, { type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { Errors } from './errors.js'
import database, { databaseOptions } from './plugins/app/database.js'
import { errorOptions } from './plugins/app/error-handler.js'
import history from './plugins/app/history.js'
import metrics from './plugins/app/metrics.js'
import repository from './plugins/app/repository.js'
import retention from './plugins/app/retention.js'
import health from './routes/health/index.js'
import internal from './routes/internal/index.js'
import monitor from './routes/monitor/index.js'

/**
 * Builds the message-store from a validated config. Never listens: server.ts
 * does, and tests use `inject()` on the same app.
 */
export async function buildApp(config: Config, options: FastifyServerOptions = {}) {
  const app = Fastify({
    logger: { level: config.LOG_LEVEL },
    bodyLimit: config.BODY_LIMIT_BYTES,
    ...serviceServerOptions(Errors),
    ...options,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // app plugins, in order: validation and errors, then resources, then auth
  await app.register(validation)
  await app.register(errorEnvelope, { ...errorOptions(config.BODY_LIMIT_BYTES), databaseErrors: databaseErrorMeaning })
  await app.register(metrics)
  await app.register(database, databaseOptions(config))
  await app.register(history, { config })
  await app.register(repository, { config })
  await app.register(retention, { config })
  await app.register(internalAuth, { internalToken: config.INTERNAL_TOKEN, errors: Errors })
  // Free JSON (`properties`, `content_blocks`) nested thousands of levels deep overflowed JSON.stringify when
  // stored (a 500): every body is refused past BODY_MAX_DEPTH, after auth, before validation.
  app.addHook('preValidation', async (request) => {
    if (exceedsJsonLimits(request.body, { maxDepth: config.BODY_MAX_DEPTH })) {
      throw new Errors.BodyTooDeep(config.BODY_MAX_DEPTH)
    }
  })
  // before the routes: the OpenAPI document is generated from the routes registered after it
  await app.register(openapi, {
    title: 'message-store',
    description: 'The monitor API (spec §5).',
    tags: [
      {
        prefix: '/api/v1/monitor/',
        name: 'Monitor',
        description: 'Messages and sessions (Langflow-compatible monitor API)',
      },
    ],
  })

  // routes, one folder per resource
  await app.register(health)
  await app.register(internal, { bodyLimit: config.INTERNAL_BODY_LIMIT_BYTES })
  await app.register(monitor)

  return app
}
