import {
  BATCH_MAX,
  type ErrorEnvelope,
  type HistoryQuery,
  INTERNAL_TOKEN_HEADER,
  type Message,
  type MessageInput,
  REQUEST_ID_HEADER,
  TENANT_HEADER,
} from '@session-runtime/schemas'
import { BalancedPool, type Dispatcher, interceptors } from 'undici'
import { parseBaseUrls } from './base-urls.js'
import {
  CLIENT_MESSAGE_STORE_BAD_RESPONSE,
  CLIENT_MESSAGE_STORE_HTTP_ERROR,
  MessageStoreError,
  MessageStoreUnavailableError,
} from './errors.js'
import { type RotationEvent, readyProbe, startUpstreamRotation, type UpstreamRotation } from './upstream-rotation.js'

export interface MessageStoreClientOptions {
  /**
   * Base URL of the message-store, e.g. `http://message-store:8080` (a path prefix is kept); several
   * instances: a list, or one string of comma-separated URLs (same path each). Requests are spread over the
   * instances in rotation (undici BalancedPool); see `healthIntervalMs`.
   */
  url: string | readonly string[]
  /** Sent as `x-internal-token` on every request. */
  internalToken: string
  /** Milliseconds to establish a TCP (and TLS) connection. Default 2000. */
  connectTimeout?: number
  /** Milliseconds to wait for the response headers once the request is sent. Default 5000. */
  headersTimeout?: number
  /** Milliseconds the response body may stall between two chunks. Default 5000. */
  bodyTimeout?: number
  /** Most keep-alive connections the pool opens to the message-store. Default 16. */
  connections?: number
  /** Milliseconds an idle connection is kept open (the server's `Keep-Alive` hint wins if lower). Default 4000. */
  keepAliveTimeout?: number
  /**
   * Retries after the first attempt, on connection errors, connect/headers timeouts
   * and 502/503/504 answers. Writes are idempotent on the message `id`, so retrying
   * POSTs is safe. 4xx answers are never retried. Default 2 (3 attempts in all).
   */
  maxRetries?: number
  /** Milliseconds before the first retry; doubles on each retry. Default 100. */
  retryMinDelay?: number
  /** Upper bound of one backoff delay, `Retry-After` included. Default 1000. */
  retryMaxDelay?: number
  /**
   * Several instances only: every this many milliseconds each instance's `GET /ready` is asked; one that
   * does not answer 200 leaves the rotation (so does one a connection to fails, at once), and comes back
   * when it answers 200 again. Default 1000.
   */
  healthIntervalMs?: number
  /** Several instances only: told when an instance leaves or re-enters the rotation (for logs). */
  onRotationChange?: (event: RotationEvent) => void
}

export interface CallOptions {
  /** Forwarded as `x-request-id`. */
  requestId?: string
  /** Aborts the call (and its retries); the call rejects with the signal's reason. */
  signal?: AbortSignal
}

/** A lone UTF-16 surrogate (half of a pair), which UTF-8 cannot encode. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/**
 * JSON.stringify replacer: a lone surrogate in a string (a run's input, a tweak) is sent as U+FFFD, as
 * Postgres stores it in a text column, instead of a `\ud800` escape that its jsonb refuses.
 */
const wellFormed = (_key: string, value: unknown) =>
  typeof value === 'string' ? value.replace(LONE_SURROGATE, '\ufffd') : value

/** History read: `limit` and `order` may be left to the message-store's defaults (100, ASC). */
export type HistoryParams = Omit<HistoryQuery, 'limit' | 'order'> & Partial<Pick<HistoryQuery, 'limit' | 'order'>>

/** `GET /ready` answer when the message-store is ready. */
export interface ReadyStatus {
  status: 'ok'
  postgres: 'up'
  redis: 'up' | 'down' | 'disabled'
}

export interface MessageStoreClient {
  /** Stores one message (idempotent on `input.id`: a replay answers the stored message). */
  storeMessage(tenant: string, input: MessageInput, options?: CallOptions): Promise<Message>
  /**
   * Stores messages in input order, in sequential batches of at most BATCH_MAX.
   * If a batch fails, the batches before it stay stored: calling again with the
   * same inputs is safe (idempotent on `id`).
   */
  storeMessages(tenant: string, inputs: readonly MessageInput[], options?: CallOptions): Promise<Message[]>
  /**
   * Settles messages of a failed run whose writes were not confirmed: each ends up stored with `error`
   * true and `properties.state` "partial", whether its lost write committed or not. Idempotent on `id`;
   * sent in sequential batches of at most BATCH_MAX.
   */
  storeFailedMessages(tenant: string, inputs: readonly MessageInput[], options?: CallOptions): Promise<Message[]>
  /** The latest `limit` messages of the session, error messages excluded. */
  history(tenant: string, query: HistoryParams, options?: CallOptions): Promise<Message[]>
  /**
   * `storeMessages`, then `history`, in one call per BATCH_MAX messages (the last one carries the read): the
   * read sees the messages. Idempotent on the messages' ids, so retried like `storeMessages`.
   */
  storeThenHistory(
    tenant: string,
    inputs: readonly MessageInput[],
    query: HistoryParams,
    options?: CallOptions,
  ): Promise<{ messages: Message[]; history: Message[] }>
  /**
   * Deletes every message of the tenant's flow (the flow was deleted). Idempotent: a flow
   * without messages is no error, so a retried call is safe.
   */
  deleteFlowMessages(tenant: string, flowId: string, options?: CallOptions): Promise<void>
  /**
   * Resolves when the message-store is ready; rejects with MessageStoreUnavailableError
   * when it answers 503 or can't be reached. Not retried: it reports the current state.
   */
  ready(options?: CallOptions): Promise<ReadyStatus>
  /** The instances taking requests now (origins); with one instance, that one. */
  instances(): string[]
  /** Closes the keep-alive connections once in-flight calls have finished, and stops the health polls. */
  close(): Promise<void>
}

const DEFAULTS = {
  connectTimeout: 2_000,
  headersTimeout: 5_000,
  bodyTimeout: 5_000,
  connections: 16,
  maxRetries: 2,
  retryMinDelay: 100,
  retryMaxDelay: 1_000,
  healthIntervalMs: 1_000,
}

/** Answers worth retrying: the store (or a proxy in front of it) is momentarily unavailable. */
const RETRY_STATUS_CODES = [502, 503, 504]

/**
 * Network failures worth retrying; writes are idempotent, so a resent request is harmless. With several
 * instances, the failed one has left the rotation by then: the retry goes to another one.
 */
const RETRY_ERROR_CODES = [
  // the instance's pool was closed as it left the rotation: nothing was sent
  'UND_ERR_CLOSED',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]

type Method = 'GET' | 'POST' | 'DELETE'

interface Exchange extends CallOptions {
  dispatcher: Dispatcher
  method: Method
  /** Route path, used in error messages (never carries the query string). */
  route: string
  query?: string
  tenant?: string
  body?: unknown
}

interface Answer {
  statusCode: number
  text: string
}

export function createMessageStoreClient(options: MessageStoreClientOptions): MessageStoreClient {
  const urls = parseBaseUrls(
    typeof options.url === 'string' ? options.url : options.url.join(','),
    'message-store url',
  ).map((entry) => new URL(entry))
  if (!options.internalToken) {
    throw new TypeError('message-store internalToken is required')
  }
  const settings = { ...DEFAULTS, ...withoutUndefined(options) }
  const basePath = (urls[0] as URL).pathname.replace(/\/+$/, '')
  const origins = urls.map((entry) => entry.origin)

  // one keep-alive pool per instance (with one instance, a plain pool in effect)
  const pool = new BalancedPool(origins, {
    connections: settings.connections,
    connectTimeout: settings.connectTimeout,
    headersTimeout: settings.headersTimeout,
    bodyTimeout: settings.bodyTimeout,
    keepAliveTimeout: settings.keepAliveTimeout,
  })
  const rotation: UpstreamRotation | undefined =
    origins.length > 1
      ? startUpstreamRotation({
          origins,
          pool,
          intervalMs: settings.healthIntervalMs,
          probe: readyProbe(settings.connectTimeout, `${basePath}/ready`),
          onChange: options.onRotationChange,
        })
      : undefined
  const retrying = pool.compose(
    interceptors.retry({
      maxRetries: settings.maxRetries,
      minTimeout: settings.retryMinDelay,
      maxTimeout: settings.retryMaxDelay,
      timeoutFactor: 2,
      retryAfter: true,
      // DELETE is only used for idempotent deletes.
      methods: ['GET', 'POST', 'DELETE'],
      statusCodes: RETRY_STATUS_CODES,
      errorCodes: RETRY_ERROR_CODES,
      // Hand the last 5xx answer over once retries are exhausted, so its envelope is kept.
      throwOnError: false,
    }),
  )
  let closed = false

  async function exchange(call: Exchange): Promise<Answer> {
    if (closed) throw new Error('message-store client is closed')
    const headers: Record<string, string> = {
      [INTERNAL_TOKEN_HEADER]: options.internalToken,
      accept: 'application/json',
    }
    if (call.tenant !== undefined) headers[TENANT_HEADER] = call.tenant
    if (call.requestId) headers[REQUEST_ID_HEADER] = call.requestId
    let body: string | undefined
    if (call.body !== undefined) {
      body = JSON.stringify(call.body, wellFormed)
      headers['content-type'] = 'application/json'
    }
    try {
      const response = await call.dispatcher.request({
        method: call.method,
        path: basePath + call.route + (call.query ? `?${call.query}` : ''),
        headers,
        body,
        signal: call.signal,
      })
      return { statusCode: response.statusCode, text: await response.body.text() }
    } catch (err) {
      throw networkError(err, call)
    }
  }

  function networkError(err: unknown, call: Exchange): unknown {
    // The caller's own abort, and programming errors (bad header value…), pass through.
    if (call.signal?.aborted) return err
    const code = errorCode(err)
    if (code === 'UND_ERR_INVALID_ARG') return err
    let reason: string
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      reason = `connect timeout after ${settings.connectTimeout} ms`
    } else if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      reason = `no response within ${settings.headersTimeout} ms`
    } else if (code === 'UND_ERR_BODY_TIMEOUT') {
      reason = `response body stalled for ${settings.bodyTimeout} ms`
    } else {
      const message = err instanceof Error ? err.message : ''
      reason = message || code || String(err)
      if (code && !reason.includes(code)) reason += ` (${code})`
    }
    return new MessageStoreUnavailableError(`${reason} [${call.method} ${call.route}]`, {
      cause: err,
    })
  }

  async function json<T>(call: Exchange): Promise<T> {
    const answer = await exchange(call)
    if (answer.statusCode >= 200 && answer.statusCode < 300) return parseSuccess<T>(answer, call)
    throw answerError(answer, call)
  }

  async function inBatches(
    route: string,
    tenant: string,
    inputs: readonly MessageInput[],
    opts: CallOptions,
  ): Promise<Message[]> {
    requireTenant(tenant)
    const stored: Message[] = []
    for (let start = 0; start < inputs.length; start += BATCH_MAX) {
      const messages = inputs.slice(start, start + BATCH_MAX)
      const batch = await json<Message[]>({
        ...opts,
        dispatcher: retrying,
        method: 'POST',
        route,
        tenant,
        body: { messages },
      })
      stored.push(...batch)
    }
    return stored
  }

  return {
    async storeMessage(tenant, input, opts = {}) {
      return json<Message>({
        ...opts,
        dispatcher: retrying,
        method: 'POST',
        route: '/internal/messages',
        tenant: requireTenant(tenant),
        body: input,
      })
    },

    storeMessages(tenant, inputs, opts = {}) {
      return inBatches('/internal/messages/batch', tenant, inputs, opts)
    },

    storeFailedMessages(tenant, inputs, opts = {}) {
      return inBatches('/internal/messages/failed', tenant, inputs, opts)
    },

    async storeThenHistory(tenant, inputs, query, opts = {}) {
      requireTenant(tenant)
      const last = Math.max(0, inputs.length - BATCH_MAX)
      const before = last > 0 ? await inBatches('/internal/messages/batch', tenant, inputs.slice(0, last), opts) : []
      const answer = await json<{ messages: Message[]; history: Message[] }>({
        ...opts,
        dispatcher: retrying,
        method: 'POST',
        route: '/internal/messages/then-history',
        tenant,
        body: { messages: inputs.slice(last), history: query },
      })
      return { messages: [...before, ...answer.messages], history: answer.history }
    },

    async history(tenant, query, opts = {}) {
      const params = new URLSearchParams({ flow_id: query.flow_id, session_id: query.session_id })
      if (query.limit !== undefined) params.set('limit', String(query.limit))
      if (query.order !== undefined) params.set('order', query.order)
      if (query.sender !== undefined) params.set('sender', query.sender)
      if (query.sender_name !== undefined) params.set('sender_name', query.sender_name)
      return json<Message[]>({
        ...opts,
        dispatcher: retrying,
        method: 'GET',
        route: '/internal/history',
        query: params.toString(),
        tenant: requireTenant(tenant),
      })
    },

    async deleteFlowMessages(tenant, flowId, opts = {}) {
      if (typeof flowId !== 'string' || flowId === '') throw new TypeError('flowId is required')
      const call: Exchange = {
        ...opts,
        dispatcher: retrying,
        method: 'DELETE',
        route: `/internal/flows/${encodeURIComponent(flowId)}/messages`,
        tenant: requireTenant(tenant),
      }
      const answer = await exchange(call)
      if (answer.statusCode >= 200 && answer.statusCode < 300) return
      throw answerError(answer, call)
    },

    async ready(opts = {}) {
      const call: Exchange = { ...opts, dispatcher: pool, method: 'GET', route: '/ready' }
      const answer = await exchange(call)
      if (answer.statusCode === 200) return parseSuccess<ReadyStatus>(answer, call)
      const status = parseJson(answer.text)
      if (answer.statusCode === 503 && isObject(status) && 'postgres' in status) {
        const parts = Object.entries(status)
          .filter(([key]) => key !== 'status')
          .map(([key, value]) => `${key}: ${String(value)}`)
        throw new MessageStoreUnavailableError(`not ready (${parts.join(', ')}) [GET /ready]`)
      }
      throw answerError(answer, call)
    },

    instances: () => rotation?.inRotation() ?? origins,

    async close() {
      if (closed) return
      closed = true
      rotation?.close()
      await pool.close()
    },
  }
}

function parseSuccess<T>(answer: Answer, call: Exchange): T {
  try {
    return JSON.parse(answer.text) as T
  } catch (err) {
    throw new MessageStoreError(
      502,
      CLIENT_MESSAGE_STORE_BAD_RESPONSE,
      `invalid JSON in the ${answer.statusCode} answer to ${call.method} ${call.route}`,
      { cause: err },
    )
  }
}

/** The error for a non-2xx answer: 502/503/504 mean unavailable, anything else is the store's word. */
function answerError(answer: Answer, call: Exchange): MessageStoreError {
  const envelope = parseJson(answer.text)
  const error =
    isObject(envelope) && typeof envelope.detail === 'string' && typeof envelope.code === 'string'
      ? new MessageStoreError(answer.statusCode, envelope.code, envelope.detail)
      : new MessageStoreError(
          answer.statusCode,
          CLIENT_MESSAGE_STORE_HTTP_ERROR,
          answer.text.slice(0, 200) || `HTTP ${answer.statusCode}`,
        )
  if (!RETRY_STATUS_CODES.includes(answer.statusCode)) return error
  return new MessageStoreUnavailableError(
    `answered ${error.statusCode} ${error.code}: ${error.detail} [${call.method} ${call.route}]`,
    { cause: error },
  )
}

function requireTenant(tenant: string): string {
  if (typeof tenant !== 'string' || tenant === '') throw new TypeError('tenant is required')
  return tenant
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isObject(value: unknown): value is Partial<ErrorEnvelope> & Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>
}
