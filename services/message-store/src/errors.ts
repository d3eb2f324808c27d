import createError from '@fastify/error'

/** Every error the message-store answers with; codes are prefixed by the service. */
export const Errors = {
  Unauthorized: createError('MSGSTORE_UNAUTHORIZED', 'Missing or invalid internal token', 401),
  MissingTenant: createError('MSGSTORE_MISSING_TENANT', 'Missing or invalid %s header', 400),
  Validation: createError('MSGSTORE_VALIDATION', '%s', 422),
  BadRequest: createError('MSGSTORE_BAD_REQUEST', '%s', 400),
  InvalidCursor: createError('MSGSTORE_INVALID_CURSOR', '%s', 400),
  TooManySessions: createError('MSGSTORE_TOO_MANY_SESSIONS', 'At most %d session IDs per request', 400),
  UnsupportedMediaType: createError('MSGSTORE_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Content-Type; send JSON', 415),
  PayloadTooLarge: createError('MSGSTORE_PAYLOAD_TOO_LARGE', 'Request body is larger than the limit of %d bytes', 413),
  MessageNotFound: createError('MSGSTORE_MESSAGE_NOT_FOUND', 'Message not found', 404),
  SessionNotFound: createError('MSGSTORE_SESSION_NOT_FOUND', '%s', 404),
  SessionConflict: createError('MSGSTORE_SESSION_CONFLICT', '%s', 409),
  MessageIdConflict: createError('MSGSTORE_MESSAGE_ID_CONFLICT', '%s', 409),
  NotFound: createError('MSGSTORE_ROUTE_NOT_FOUND', 'Route %s %s not found', 404),
  Unavailable: createError('MSGSTORE_UNAVAILABLE', 'Database unavailable: %s', 503),
  Internal: createError('MSGSTORE_INTERNAL', 'Internal server error', 500),
}
