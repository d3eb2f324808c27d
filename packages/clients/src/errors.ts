/** Code of the error raised when the message-store can't be reached or keeps failing. */
export const CLIENT_MESSAGE_STORE_UNAVAILABLE = 'CLIENT_MESSAGE_STORE_UNAVAILABLE'
/** Code used when an error answer carries no `{ detail, code }` envelope. */
export const CLIENT_MESSAGE_STORE_HTTP_ERROR = 'CLIENT_MESSAGE_STORE_HTTP_ERROR'
/** Code used when a success answer isn't JSON. */
export const CLIENT_MESSAGE_STORE_BAD_RESPONSE = 'CLIENT_MESSAGE_STORE_BAD_RESPONSE'

/** The message-store answered with a 4xx/5xx: `statusCode`, `code` and `detail` come from its answer. */
export class MessageStoreError extends Error {
  readonly statusCode: number
  readonly code: string
  readonly detail: string

  constructor(statusCode: number, code: string, detail: string, options?: ErrorOptions) {
    super(`message-store answered ${statusCode} ${code}: ${detail}`, options)
    this.name = 'MessageStoreError'
    this.statusCode = statusCode
    this.code = code
    this.detail = detail
  }
}

/**
 * The message-store can't be reached, timed out, or kept answering 502/503/504
 * after the retries. Always `statusCode` 503 and code CLIENT_MESSAGE_STORE_UNAVAILABLE;
 * `cause` holds the last network error or the last {@link MessageStoreError} answer.
 */
export class MessageStoreUnavailableError extends MessageStoreError {
  constructor(reason: string, options?: ErrorOptions) {
    super(503, CLIENT_MESSAGE_STORE_UNAVAILABLE, `message-store unavailable: ${reason}`, options)
    this.name = 'MessageStoreUnavailableError'
    this.message = this.detail
  }
}
