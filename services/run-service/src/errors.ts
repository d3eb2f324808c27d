import createError from '@fastify/error'

/** Every error the run-service answers with; codes are prefixed by the service. */
export const Errors = {
  Unauthorized: createError('RUNSVC_UNAUTHORIZED', 'Missing or invalid internal token', 401),
  MissingTenant: createError('RUNSVC_MISSING_TENANT', 'Missing or invalid %s header', 400),
  Validation: createError('RUNSVC_VALIDATION', '%s', 422),
  BadRequest: createError('RUNSVC_BAD_REQUEST', '%s', 400),
  UnsupportedMediaType: createError('RUNSVC_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Content-Type; send JSON', 415),
  PayloadTooLarge: createError('RUNSVC_PAYLOAD_TOO_LARGE', 'Request body is larger than the limit of %d bytes', 413),
  FlowNotFound: createError('RUNSVC_FLOW_NOT_FOUND', 'Flow identifier %s not found', 404),
  FlowInvalid: createError('RUNSVC_FLOW_INVALID', '%s', 422),
  EndpointNameConflict: createError('RUNSVC_ENDPOINT_NAME_CONFLICT', '%s', 409),
  NotFound: createError('RUNSVC_ROUTE_NOT_FOUND', 'Route %s %s not found', 404),
  Unavailable: createError('RUNSVC_UNAVAILABLE', 'Database unavailable: %s', 503),
  MessageStoreUnavailable: createError('RUNSVC_MESSAGE_STORE_UNAVAILABLE', '%s', 503),
  MessageStoreFailed: createError('RUNSVC_MESSAGE_STORE_FAILED', 'The message-store refused the request: %s', 502),
  Internal: createError('RUNSVC_INTERNAL', 'Internal server error', 500),
}
