import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { CommonErrors } from './errors.js'
import { RequestLog } from './request-log.js'

/** A database error the caller should see (the shape of @session-runtime/db's `DatabaseErrorMeaning`). */
export type DatabaseErrorMeaning = { kind: 'unavailable' } | { kind: 'unstorable'; detail: string }

export interface ErrorEnvelopeOptions {
  /** The service's code prefix, e.g. MSGSTORE. */
  prefix: string
  errors: CommonErrors
  bodyLimit: number
  /** Maps the service's own domain errors; undefined for anything else. */
  mapError?: (err: Error) => FastifyError | undefined
  /** Extra fields of the envelope for some errors (e.g. the problems of an invalid flow). */
  extraBody?: (err: Error) => Record<string, unknown> | undefined
  /**
   * What the service's database says about an error: unreachable (503, try again) or the caller's data it
   * cannot store (422). Services with a database pass `databaseErrorMeaning` of @session-runtime/db.
   */
  databaseErrors?: (err: Error) => DatabaseErrorMeaning | undefined
  /** 5xx statuses whose message is shown (a dependency's state); other 5xx show a generic message. */
  shown5xx?: number[]
}

/** Maps every error to the one envelope `{ detail, code }`; 5xx details are logged, not shown. */
function toHttpError(err: FastifyError, bodyLimit: number, opts: ErrorEnvelopeOptions): FastifyError {
  const { errors: Errors } = opts
  if (err.validation) return new Errors.Validation(err.message)
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Errors.PayloadTooLarge(bodyLimit)
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new Errors.BadRequest('Malformed JSON in request body')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Errors.BadRequest('Request body is empty but Content-Type is application/json')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Errors.UnsupportedMediaType()
  }
  const mapped = opts.mapError?.(err)
  if (mapped) return mapped
  const meaning = opts.databaseErrors?.(err)
  if (meaning?.kind === 'unavailable') return new Errors.Unavailable('try again shortly')
  if (meaning?.kind === 'unstorable') return new Errors.Validation(meaning.detail)
  return err
}

/**
 * The router's own errors (a malformed percent-encoding, a path parameter over
 * maxParamLength) never reach the error handler; Fastify calls this instead.
 * Both are the caller's mistake, answered in the envelope: an over-long
 * parameter can't be a valid session ID or UUID, so it is a 422 like any other.
 */
export function frameworkErrors(Errors: CommonErrors) {
  return (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
    const err =
      error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new Errors.Validation('A path parameter is longer than any valid value')
        : new Errors.BadRequest('Malformed URL: invalid percent-encoding')
    return reply.code(err.statusCode ?? 400).send({ detail: err.message, code: err.code })
  }
}

async function errorEnvelope(app: FastifyInstance, opts: ErrorEnvelopeOptions) {
  const { errors: Errors, prefix } = opts
  const shown5xx = new Set(opts.shown5xx ?? [503])
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const err = toHttpError(error, request.routeOptions.bodyLimit ?? opts.bodyLimit, opts)
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500
    if (status >= 500) {
      // A caller that went away (e.g. a proxied request cut off) is not this service's failure: its
      // `request completed` line says clientClosed (RequestLog); the error that followed is a detail.
      if (reply.raw.destroyed) request.log.debug({ err: error }, 'request ended: the client closed the connection')
      else request.log.error({ err: error }, 'request failed')
      const shown = shown5xx.has(status) ? err : new Errors.Internal()
      return reply.code(status).send({ detail: shown.message, code: shown.code })
    }
    // Any other framework error keeps its status but answers with a code of this service.
    const code = err.code?.startsWith(`${prefix}_`) ? err.code : `${prefix}_BAD_REQUEST`
    return reply.code(status).send({ detail: err.message, code, ...opts.extraBody?.(error) })
  })
  // A request that arrives while the server closes (on a keep-alive connection still busy when closing began)
  // is refused with a 503 in the envelope; Fastify's own answer (return503OnClosing, turned off in
  // serviceServerOptions) is no envelope. The connection is closed after the answer.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return
    const err = new Errors.ShuttingDown()
    return reply.code(503).header('connection', 'close').send({ detail: err.message, code: err.code })
  })
  app.setNotFoundHandler((request, reply) => {
    const err = new Errors.NotFound(request.method, request.url.split('?')[0])
    reply.code(404).send({ detail: err.message, code: err.code })
  })
}

export default fp(errorEnvelope, { name: 'error-envelope' })

/**
 * The server options every internal service shares: IDs from the edge's `x-request-id`,
 * one `request completed` line per request at `debug` (the gateway logs the client's request
 * at `info`; a service's request is one hop of it), router errors in the envelope, path
 * parameters long enough for percent-encoded session IDs (find-my-way's default of 100
 * answers 414), and a start-up that may wait for the database and its migrations (PGlite
 * boots in seconds on a busy machine).
 */
export function serviceServerOptions(Errors: CommonErrors) {
  return {
    requestIdHeader: 'x-request-id',
    logController: new RequestLog({ level: 'debug' }),
    frameworkErrors: frameworkErrors(Errors),
    pluginTimeout: 60_000,
    routerOptions: { maxParamLength: 65_536 },
    // errorEnvelope answers requests that arrive while closing, in the envelope
    return503OnClosing: false,
  }
}
