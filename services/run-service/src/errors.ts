import createError from '@fastify/error'
import { commonErrors } from '@session-runtime/service-kit'

/** Every error the run-service answers with; codes are prefixed by the service. */
export const Errors = {
  ...commonErrors('RUNSVC'),
  FlowNotFound: createError('RUNSVC_FLOW_NOT_FOUND', 'Flow identifier %s not found', 404),
  FlowInvalid: createError('RUNSVC_FLOW_INVALID', '%s', 422),
  EndpointNameConflict: createError('RUNSVC_ENDPOINT_NAME_CONFLICT', '%s', 409),
  MessageStoreUnavailable: createError('RUNSVC_MESSAGE_STORE_UNAVAILABLE', '%s', 503),
  MessageStoreFailed: createError('RUNSVC_MESSAGE_STORE_FAILED', 'The message-store refused the request: %s', 502),
}
