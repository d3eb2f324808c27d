import type { ErrorEnvelopeOptions } from '@session-runtime/service-kit'
import { InvalidCursorError } from '../../domain/cursor.js'
import {
  ForkPointError,
  MessageIdConflictError,
  MessageNotFoundError,
  MetadataLimitError,
  SessionConflictError,
  SessionNotFoundError,
} from '../../domain/repository/errors.js'
import { InvalidSearchError } from '../../domain/search-terms.js'
import { Errors } from '../../errors.js'

/** How the message-store's domain errors appear in the error envelope. */
export function errorOptions(bodyLimit: number): ErrorEnvelopeOptions {
  return {
    prefix: 'MSGSTORE',
    errors: Errors,
    bodyLimit,
    mapError(err) {
      if (err instanceof InvalidCursorError) return new Errors.InvalidCursor(err.message)
      if (err instanceof InvalidSearchError) return new Errors.InvalidSearch(err.message)
      if (err instanceof MessageNotFoundError) return new Errors.MessageNotFound()
      if (err instanceof SessionNotFoundError) return new Errors.SessionNotFound(err.message)
      if (err instanceof SessionConflictError) return new Errors.SessionConflict(err.message)
      if (err instanceof MessageIdConflictError) return new Errors.MessageIdConflict(err.message)
      if (err instanceof MetadataLimitError) return new Errors.TooManyMetadataKeys(err.message)
      if (err instanceof ForkPointError) return new Errors.InvalidForkPoint(err.message)
      return undefined
    },
  }
}
