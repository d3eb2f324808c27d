import { MessageStoreError, MessageStoreUnavailableError } from '@session-runtime/clients'
import { isUnavailableError } from '@session-runtime/db'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { EndpointNameConflictError, FlowNotFoundError } from '../../domain/flow-repository.js'
import { FlowInvalidError, type GraphProblem } from '../../engine/index.js'
import { Errors } from '../../errors.js'
import type { FlowProblem } from '../../schemas/flows.js'

/** Maps every error to the one envelope `{ detail, code }`; 5xx details are logged, not shown. */
function toHttpError(err: FastifyError, bodyLimit: number): FastifyError {
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
  if (err instanceof FlowInvalidError) return new Errors.FlowInvalid(err.message)
  if (err instanceof FlowNotFoundError) return new Errors.FlowNotFound(err.identifier)
  if (err instanceof EndpointNameConflictError) return new Errors.EndpointNameConflict(err.message)
  if (err instanceof MessageStoreUnavailableError) return new Errors.MessageStoreUnavailable(err.message)
  if (err instanceof MessageStoreError) return new Errors.MessageStoreFailed(`${err.statusCode} ${err.code}`)
  if (isUnavailableError(err)) return new Errors.Unavailable('try again shortly')
  // Postgres cannot store NUL in text or JSON: the caller's data, not our failure.
  if (err.code === '22P05' || err.code === '22021') {
    return new Errors.Validation('body contains a character that cannot be stored (NUL, \\u0000)')
  }
  return err
}

/** The engine's problems, in the API's snake_case: each names its node (or nodes, or edge). */
export function problemBody(problem: GraphProblem): FlowProblem {
  const body: FlowProblem = { kind: problem.kind, message: problem.message }
  if ('nodeId' in problem) body.node_id = problem.nodeId
  if ('nodeIds' in problem) body.node_ids = problem.nodeIds
  if ('edgeId' in problem) body.edge_id = problem.edgeId
  if ('componentType' in problem) body.component_type = problem.componentType
  if ('field' in problem) body.field = problem.field
  if ('output' in problem) body.output = problem.output
  if ('at' in problem) body.at = problem.at
  return body
}

/**
 * The router's own errors (a malformed percent-encoding, a path parameter over
 * maxParamLength) never reach the error handler; Fastify calls this instead.
 * Both are the caller's mistake, answered in the envelope.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  const err =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new Errors.Validation('A path parameter is longer than any valid value')
      : new Errors.BadRequest('Malformed URL: invalid percent-encoding')
  return reply.code(err.statusCode ?? 400).send({ detail: err.message, code: err.code })
}

async function errorHandler(app: FastifyInstance, opts: { bodyLimit: number }) {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const err = toHttpError(error, request.routeOptions.bodyLimit ?? opts.bodyLimit)
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      const shown = status === 503 || status === 502 ? err : new Errors.Internal()
      return reply.code(status).send({ detail: shown.message, code: shown.code })
    }
    if (error instanceof FlowInvalidError) {
      return reply.code(422).send({ detail: err.message, code: err.code, problems: error.problems.map(problemBody) })
    }
    // Any other framework error keeps its status but answers with a code of this service.
    const code = err.code?.startsWith('RUNSVC_') ? err.code : 'RUNSVC_BAD_REQUEST'
    return reply.code(status).send({ detail: err.message, code })
  })
  app.setNotFoundHandler((request, reply) => {
    const err = new Errors.NotFound(request.method, request.url.split('?')[0])
    reply.code(404).send({ detail: err.message, code: err.code })
  })
}

export default fp(errorHandler, { name: 'error-handler' })
