/** The message-store's domain errors (plugins/app/error-handler.ts maps them to the error envelope). */

export class MessageIdConflictError extends Error {
  constructor(readonly ids: string[]) {
    super(`Message id already used by another owner: ${ids.join(', ')}`)
  }
}
export class SessionNotFoundError extends Error {}
export class SessionConflictError extends Error {}
export class MessageNotFoundError extends Error {}
export class MetadataLimitError extends Error {}
/** A fork's `up_to_message_id` is no message of the forked session. */
export class ForkPointError extends Error {}
