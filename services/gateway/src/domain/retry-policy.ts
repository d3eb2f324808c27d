/**
 * Which failed forwarded requests the gateway sends again, to another instance of the service. Only a
 * failure before any response is retried (once a response started, it is the caller's); which ones
 * depends on what the instance may already have done:
 *
 * - never connected (`NOT_SENT`: refused, connect timeout, unknown host, the instance's pool closed as it
 *   left the rotation): nothing was sent, so any request is retried, a run (`POST /api/v1/run/*`) included;
 * - the connection broke after the request was sent (`CONNECTION_LOST`: reset, closed by the other side):
 *   only reads (GET, HEAD) and the idempotent PUT and DELETE of the flows and monitor APIs are retried.
 *   A run is never retried then (it may have started: its messages stored, its model called), nor any
 *   POST or PATCH;
 * - anything else (a timeout waiting for the answer, an aborted request) is never retried.
 */

/** The request never reached the instance. */
export const NOT_SENT: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CLOSED',
])

/** The connection broke before any response: the instance may have received (and acted on) the request. */
export const CONNECTION_LOST: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])

/** The prefix whose POSTs start runs: never replayed once sent. */
export const RUN_PREFIX = '/api/v1/run'

const READS = new Set(['GET', 'HEAD'])
const IDEMPOTENT_WRITES = new Set(['PUT', 'DELETE'])

/** Whether a request that failed with `code` (no response) may be sent again to another instance. */
export function mayRetryElsewhere(method: string, prefix: string, code: string | undefined): boolean {
  if (code === undefined) return false
  if (NOT_SENT.has(code)) return true
  if (!CONNECTION_LOST.has(code)) return false
  const verb = method.toUpperCase()
  return READS.has(verb) || (IDEMPOTENT_WRITES.has(verb) && prefix !== RUN_PREFIX)
}

/** The code of a failure (undici puts it on the error, Node's socket errors on the cause too). */
export function failureCode(error: unknown): string | undefined {
  const own = (error as { code?: unknown } | null)?.code
  if (typeof own === 'string') return own
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code
  return typeof cause === 'string' ? cause : undefined
}
