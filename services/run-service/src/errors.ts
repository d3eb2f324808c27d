import createError from '@fastify/error'
import { MessageStoreError, MessageStoreUnavailableError } from '@session-runtime/clients'
import { commonErrors } from '@session-runtime/service-kit'
import type { FastifyError } from 'fastify'
import { EndpointNameConflictError, FlowNotFoundError } from './domain/flow-repository.js'
import { SessionBusyError } from './domain/session-runs.js'
import {
  ComponentFailedError,
  FlowInvalidError,
  InvalidTweakError,
  RunAbortedError,
  TweakConflictError,
  UnknownOutputComponentError,
} from './engine/index.js'

/** Every error the run-service answers with; codes are prefixed by the service. */
export const Errors = {
  ...commonErrors('RUNSVC'),
  FlowNotFound: createError('RUNSVC_FLOW_NOT_FOUND', 'Flow identifier %s not found', 404),
  ResponseNotFound: createError('RUNSVC_RESPONSE_NOT_FOUND', "Previous response with id '%s' not found", 404),
  FlowInvalid: createError('RUNSVC_FLOW_INVALID', '%s', 422),
  EndpointNameConflict: createError('RUNSVC_ENDPOINT_NAME_CONFLICT', '%s', 409),
  MessageStoreUnavailable: createError('RUNSVC_MESSAGE_STORE_UNAVAILABLE', '%s', 503),
  TweakConflict: createError('RUNSVC_TWEAK_CONFLICT', '%s', 400),
  UnknownOutputComponent: createError('RUNSVC_UNKNOWN_OUTPUT_COMPONENT', '%s', 400),
  InputTooLarge: createError('RUNSVC_INPUT_TOO_LARGE', 'input_value is longer than the limit of %d characters', 413),
  FlowTooManyNodes: createError(
    'RUNSVC_FLOW_TOO_MANY_NODES',
    'data.nodes has %d nodes, more than the limit of %d nodes per flow',
    413,
  ),
  FlowTooManyEdges: createError(
    'RUNSVC_FLOW_TOO_MANY_EDGES',
    'data.edges has %d edges, more than the limit of %d edges per flow',
    413,
  ),
  FlowTooDeep: createError(
    'RUNSVC_FLOW_TOO_DEEP',
    'The flow body nests objects and arrays deeper than the limit of %d levels',
    422,
  ),
  TweaksTooDeep: createError(
    'RUNSVC_TWEAKS_TOO_DEEP',
    'body/tweaks nests objects and arrays deeper than the limit of %d levels',
    422,
  ),
  TweaksTooManyKeys: createError(
    'RUNSVC_TWEAKS_TOO_MANY_KEYS',
    'body/tweaks has more than the limit of %d keys and array items (counted at every level)',
    422,
  ),
  ComponentFailed: createError('RUNSVC_COMPONENT_FAILED', '%s', 500),
  ModelProviderFailed: createError('RUNSVC_MODEL_PROVIDER_FAILED', '%s', 502),
  SessionBusy: createError('RUNSVC_SESSION_BUSY', '%s', 409),
  RunCancelled: createError('RUNSVC_RUN_CANCELLED', 'The run was cancelled', 499),
  MessageStoreFailed: createError('RUNSVC_MESSAGE_STORE_FAILED', 'The message-store refused the request: %s', 502),
}

/**
 * The one mapping of the run-service's own errors to its HTTP errors (status, code, detail): the engine's, the
 * flow repository's, the message-store client's, and a run's failure. Undefined for anything else. The error
 * handler (plugins/app/error-handler.ts) answers with it; so does the run route for a run that failed once
 * started (`runFailure`).
 */
export function toHttpError(err: unknown): FastifyError | undefined {
  if (err instanceof FlowInvalidError) return new Errors.FlowInvalid(err.message)
  if (err instanceof TweakConflictError) return new Errors.TweakConflict(err.message)
  if (err instanceof InvalidTweakError) return new Errors.Validation(err.message)
  if (err instanceof UnknownOutputComponentError) return new Errors.UnknownOutputComponent(err.message)
  if (err instanceof FlowNotFoundError) return new Errors.FlowNotFound(err.identifier)
  if (err instanceof EndpointNameConflictError) return new Errors.EndpointNameConflict(err.message)
  if (err instanceof MessageStoreUnavailableError) return new Errors.MessageStoreUnavailable(err.message)
  if (err instanceof MessageStoreError) return new Errors.MessageStoreFailed(`${err.statusCode} ${err.code}`)
  if (err instanceof RunAbortedError) return new Errors.RunCancelled()
  if (err instanceof SessionBusyError) return new Errors.SessionBusy(err.message)
  if (err instanceof ComponentFailedError) return componentFailure(err)
  return undefined
}

/**
 * How a run that started and then failed is answered (a JSON error, or the `error` event of a stream): the
 * run was cancelled or a component failed. Undefined for anything else (a bug: a 500).
 */
export function runFailure(err: unknown): FastifyError | undefined {
  return err instanceof RunAbortedError || err instanceof ComponentFailedError ? toHttpError(err) : undefined
}

/** A failed component: the message-store's state if it was the cause, else the model provider's, else a 500. */
function componentFailure(err: ComponentFailedError): FastifyError {
  const cause = err.cause
  const where = `component "${err.component.displayName}" (${err.component.nodeId})`
  if (cause instanceof MessageStoreUnavailableError) {
    return new Errors.MessageStoreUnavailable(
      `The message-store is unavailable, so the run stopped at ${where}; try again shortly (${cause.message})`,
    )
  }
  if (cause instanceof MessageStoreError)
    return new Errors.MessageStoreFailed(`${cause.statusCode} ${cause.code} at ${where}`)
  if (err.providerFailed) return new Errors.ModelProviderFailed(err.message)
  return new Errors.ComponentFailed(err.message)
}
