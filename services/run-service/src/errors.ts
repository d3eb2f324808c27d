import createError from '@fastify/error'
import { commonErrors } from '@session-runtime/service-kit'

/** Every error the run-service answers with; codes are prefixed by the service. */
export const Errors = {
  ...commonErrors('RUNSVC'),
  FlowNotFound: createError('RUNSVC_FLOW_NOT_FOUND', 'Flow identifier %s not found', 404),
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
  RunCancelled: createError('RUNSVC_RUN_CANCELLED', 'The run was cancelled', 499),
  MessageStoreFailed: createError('RUNSVC_MESSAGE_STORE_FAILED', 'The message-store refused the request: %s', 502),
}
