import createError from '@fastify/error'
import { commonErrors } from '@session-runtime/service-kit'

/** Every error the message-store answers with; codes are prefixed by the service. */
export const Errors = {
  ...commonErrors('MSGSTORE'),
  InvalidCursor: createError('MSGSTORE_INVALID_CURSOR', '%s', 400),
  InvalidSearch: createError('MSGSTORE_INVALID_SEARCH', '%s', 422),
  BodyTooDeep: createError(
    'MSGSTORE_BODY_TOO_DEEP',
    'The request body nests objects and arrays deeper than the limit of %d levels',
    422,
  ),
  TooManySessions: createError('MSGSTORE_TOO_MANY_SESSIONS', 'At most %d session IDs per request', 400),
  MessageNotFound: createError('MSGSTORE_MESSAGE_NOT_FOUND', 'Message not found', 404),
  SessionNotFound: createError('MSGSTORE_SESSION_NOT_FOUND', '%s', 404),
  SessionConflict: createError('MSGSTORE_SESSION_CONFLICT', '%s', 409),
  InvalidForkPoint: createError('MSGSTORE_INVALID_FORK_POINT', '%s', 422),
  MessageIdConflict: createError('MSGSTORE_MESSAGE_ID_CONFLICT', '%s', 409),
  TooManyMetadataKeys: createError('MSGSTORE_TOO_MANY_METADATA_KEYS', '%s', 422),
  InvalidMetadataFilter: createError('MSGSTORE_INVALID_METADATA_FILTER', '%s', 400),
  SweepBusy: createError('MSGSTORE_SWEEP_BUSY', '%s', 409),
}
