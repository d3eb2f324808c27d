import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { errorEnvelope, frameworkErrors, internalAuth, validation } from '@session-runtime/service-kit'
import Fastify, { type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { Errors } from './errors.js'
import database from './plugins/app/database.js'
import { errorOptions } from './plugins/app/error-handler.js'
import history from './plugins/app/history.js'
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
    // Session IDs travel in paths: 255 code points, percent-encoded, are far longer
    // than find-my-way's default of 100 (which answers 414).
    routerOptions: { maxParamLength: 65_536 },
    // Bad percent-encoding and over-long parameters: answered in the error envelope.
    frameworkErrors: frameworkErrors(Errors),
    requestIdHeader: 'x-request-id',
    // Start-up waits for the database and its migrations (PGlite boots in seconds on a busy machine).
    pluginTimeout: 60_000,
    ...options,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // app plugins, in order: validation and errors, then resources, then auth
  await app.register(validation)
  await app.register(errorEnvelope, errorOptions(config.BODY_LIMIT_BYTES))
  await app.register(database, { config })
  await app.register(history, { config })
  await app.register(internalAuth, { internalToken: config.INTERNAL_TOKEN, errors: Errors })

  // routes, one folder per resource
  await app.register(health)
  await app.register(internal, { bodyLimit: config.INTERNAL_BODY_LIMIT_BYTES })
  await app.register(monitor)

  return app
}
