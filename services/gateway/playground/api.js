// The Playground's only contact with the server: the public API, same origin, with the `x-api-key` header.
// Path segments are encoded exactly once (encodeURIComponent), query values by URLSearchParams.

/** @typedef {{ id: string, name: string, endpoint_name?: string | null, description?: string | null }} Flow */
/**
 * @typedef {{ session_id: string, flow_id: string, message_count: number, first_timestamp: string,
 *   last_timestamp: string, last_text: string, metadata?: Record<string, string>,
 *   positive_feedback_count?: number, negative_feedback_count?: number }} Session
 */
/** @typedef {{ max_idle_seconds: number | null, source: 'flow' | 'tenant' | 'none' }} Retention */
/**
 * @typedef {{ id: string, text: string, sender: string, sender_name: string, session_id: string,
 *   flow_id: string, timestamp: string, error?: boolean, edit?: boolean, category?: string,
 *   properties?: Record<string, unknown> }} Message
 */
/** @typedef {{ items: any[], next: string | null }} Page */
/** @typedef {{ event: string, data: any }} RunEvent */

export const NEXT_CURSOR_HEADER = 'x-next-cursor'

/** A failed call, with a message meant for a person. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{ status?: number, code?: string, detail?: string, kind: 'auth' | 'network' | 'http' | 'run' }} info
   */
  constructor(message, info) {
    super(message)
    this.name = 'ApiError'
    this.status = info.status ?? 0
    this.code = info.code ?? ''
    this.detail = info.detail ?? ''
    this.kind = info.kind
  }
}

/** @param {string} segment */
export const seg = (segment) => encodeURIComponent(segment)

/**
 * @param {string} path already encoded
 * @param {Record<string, string | number | undefined | null>} [query]
 */
export function url(path, query) {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value))
  }
  const search = params.toString()
  return search ? `${path}?${search}` : path
}

/** @param {Response} res */
async function errorOf(res) {
  let detail = ''
  let code = ''
  try {
    const body = await res.json()
    detail = typeof body?.detail === 'string' ? body.detail : JSON.stringify(body?.detail ?? '')
    code = typeof body?.code === 'string' ? body.code : ''
  } catch {
    // not JSON: the status says enough
  }
  const status = res.status
  if (status === 401 || status === 403) {
    return new ApiError('That API key was not accepted. Check it and enter it again.', {
      status,
      code,
      detail,
      kind: 'auth',
    })
  }
  if (status === 429) {
    return new ApiError('Too many requests for this key right now. Wait a moment and try again.', {
      status,
      code,
      detail,
      kind: 'http',
    })
  }
  if (status === 409 && code === 'RUNSVC_SESSION_BUSY') {
    return new ApiError(
      'Another run is still going on in this session (from another tab or client). Nothing was stored: wait for it to end, then send again.',
      { status, code, detail, kind: 'http' },
    )
  }
  if (status >= 502 && status <= 504) {
    return new ApiError(`A service behind the gateway is not answering (${status}). Try again shortly.`, {
      status,
      code,
      detail,
      kind: 'http',
    })
  }
  return new ApiError(detail || `The server answered ${status}.`, { status, code, detail, kind: 'http' })
}

const NETWORK_MESSAGE = 'Could not reach the server. Check the network connection and try again.'

/**
 * The API for one key.
 * @param {string} key
 * @param {{ base?: string, fetch?: typeof fetch }} [options]
 */
export function createApi(key, options = {}) {
  const base = options.base ?? ''
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init))

  /**
   * @param {string} method
   * @param {string} target path and query, encoded
   * @param {{ body?: unknown, signal?: AbortSignal, accept?: string }} [init]
   */
  async function send(method, target, init = {}) {
    /** @type {Record<string, string>} */
    const headers = { 'x-api-key': key, accept: init.accept ?? 'application/json' }
    if (init.body !== undefined) headers['content-type'] = 'application/json'
    let res
    try {
      res = await doFetch(base + target, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
        cache: 'no-store',
      })
    } catch (error) {
      if (/** @type {Error} */ (error).name === 'AbortError') throw error
      throw new ApiError(NETWORK_MESSAGE, { kind: 'network' })
    }
    if (!res.ok) throw await errorOf(res)
    return res
  }

  /** @param {Response} res @returns {Promise<Page>} */
  const page = async (res) => ({ items: await res.json(), next: res.headers.get(NEXT_CURSOR_HEADER) })

  return {
    /** @returns {Promise<Flow[]>} */
    async listFlows() {
      return (await send('GET', '/api/v1/flows/')).json()
    },

    /**
     * Most recently active first.
     * @param {string} flowId
     * @param {{ limit?: number, cursor?: string | null, signal?: AbortSignal, metadata?: Record<string, string> }} [opts]
     * @returns {Promise<Page>}
     */
    async listSessions(flowId, opts = {}) {
      /** @type {Record<string, string | number | null | undefined>} */
      const query = { flow_id: flowId, limit: opts.limit ?? 30, cursor: opts.cursor }
      for (const [key, value] of Object.entries(opts.metadata ?? {})) query[`metadata.${key}`] = value
      return page(await send('GET', url('/api/v1/monitor/sessions', query), { signal: opts.signal }))
    },

    /**
     * Merges `patch` into a session's metadata (a null value removes the key); answers the session's summary.
     * @param {string} flowId
     * @param {string} sessionId
     * @param {Record<string, string | null>} patch
     * @returns {Promise<Session>}
     */
    async updateSessionMetadata(flowId, sessionId, patch) {
      const target = url(`/api/v1/monitor/sessions/${seg(sessionId)}`, { flow_id: flowId })
      return (await send('PATCH', target, { body: { metadata: patch } })).json()
    },

    /**
     * Messages of the flow whose text matches every word of `q`, newest first.
     * @param {string} flowId
     * @param {string} q
     * @param {{ limit?: number, cursor?: string | null, signal?: AbortSignal }} [opts]
     * @returns {Promise<Page>}
     */
    async searchMessages(flowId, q, opts = {}) {
      const target = url('/api/v1/monitor/messages/search', {
        q,
        flow_id: flowId,
        limit: opts.limit ?? 20,
        cursor: opts.cursor,
      })
      return page(await send('GET', target, { signal: opts.signal }))
    },

    /**
     * A session as NDJSON (its summary, then every message, oldest first).
     * @param {string} flowId
     * @param {string} sessionId
     * @returns {Promise<Blob>}
     */
    async exportSession(flowId, sessionId) {
      const target = url(`/api/v1/monitor/sessions/${seg(sessionId)}/export`, { flow_id: flowId })
      return (await send('GET', target, { accept: 'application/x-ndjson' })).blob()
    },

    /**
     * The retention that applies to the flow's sessions.
     * @param {string} flowId
     * @returns {Promise<Retention>}
     */
    async getRetention(flowId) {
      return effectiveRetention(await (await send('GET', url('/api/v1/monitor/retention', { flow_id: flowId }))).json())
    },

    /**
     * Sets the flow's idle limit (null: the tenant's default applies again).
     * @param {string} flowId
     * @param {number | null} maxIdleSeconds
     */
    async setFlowRetention(flowId, maxIdleSeconds) {
      const target = url('/api/v1/monitor/retention', { flow_id: flowId })
      await send('PUT', target, { body: { max_idle_seconds: maxIdleSeconds } })
    },

    /**
     * Newest first (order=DESC): the first page is the end of the conversation; `next` continues backwards.
     * @param {string} flowId
     * @param {string} sessionId
     * @param {{ limit?: number, cursor?: string | null, signal?: AbortSignal, order?: 'ASC' | 'DESC' }} [opts]
     * @returns {Promise<Page>}
     */
    async listMessages(flowId, sessionId, opts = {}) {
      const target = url('/api/v1/monitor/messages', {
        flow_id: flowId,
        session_id: sessionId,
        order: opts.order ?? 'DESC',
        limit: opts.limit ?? 50,
        cursor: opts.cursor,
      })
      return page(await send('GET', target, { signal: opts.signal }))
    },

    /**
     * Runs the flow with `text` in the session and streams its events to `onEvent` as they arrive.
     * Resolves with the `end` event's data; a failed run rejects with an ApiError of kind `run`.
     * @param {string} flowId
     * @param {string} sessionId
     * @param {string} text
     * @param {(event: RunEvent) => void} onEvent
     * @param {AbortSignal} [signal]
     */
    async run(flowId, sessionId, text, onEvent, signal) {
      const res = await send('POST', url(`/api/v1/run/${seg(flowId)}`, { stream: 'true' }), {
        // A run that finds another in flight on the session (another tab, another client) is refused with a
        // message, rather than waiting unseen behind it (docs/run-service.md, one run at a time per session).
        body: { input_value: text, session_id: sessionId, multitask_strategy: 'reject' },
        signal,
        accept: 'text/event-stream',
      })
      if (!res.body) throw new ApiError('The server sent no run events.', { kind: 'run' })
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      /** @type {any} */
      let result = null
      /** @type {string | null} */
      let failure = null
      /** @param {string} line */
      const handle = (line) => {
        if (line.trim() === '') return
        /** @type {RunEvent} */
        let event
        try {
          event = JSON.parse(line)
        } catch {
          return // not one of the run's events
        }
        if (event.event === 'end') result = event.data
        if (event.event === 'error') failure = String(event.data?.error ?? 'unknown error')
        onEvent(event)
      }
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value
          let newline = buffer.indexOf('\n')
          while (newline !== -1) {
            handle(buffer.slice(0, newline))
            buffer = buffer.slice(newline + 1)
            newline = buffer.indexOf('\n')
          }
        }
      } catch (error) {
        if (/** @type {Error} */ (error).name === 'AbortError') throw error
        throw new ApiError('The connection broke while the flow was running. Try again.', { kind: 'network' })
      }
      handle(buffer)
      if (failure !== null) throw new ApiError(`The run failed: ${failure}`, { kind: 'run', detail: failure })
      if (result === null) throw new ApiError('The run ended without a result. Try again.', { kind: 'run' })
      return result
    },

    /**
     * @param {string} flowId
     * @param {string} oldId
     * @param {string} newId
     * @returns {Promise<Message[]>}
     */
    async renameSession(flowId, oldId, newId) {
      const target = url(`/api/v1/monitor/messages/session/${seg(oldId)}`, { new_session_id: newId, flow_id: flowId })
      return (await send('PATCH', target)).json()
    },

    /**
     * @param {string} flowId
     * @param {string} sessionId
     */
    async deleteSession(flowId, sessionId) {
      await send('DELETE', url(`/api/v1/monitor/messages/session/${seg(sessionId)}`, { flow_id: flowId }))
    },

    /**
     * @param {string} messageId
     * @param {string} text
     * @returns {Promise<Message>}
     */
    async editMessage(messageId, text) {
      return (await send('PUT', `/api/v1/monitor/messages/${seg(messageId)}`, { body: { text } })).json()
    },

    /**
     * Thumbs up (true), down (false) or none (null) on a message, in `properties.positive_feedback` as Langflow
     * keeps it. The route replaces the properties: the message's own are sent with the flag changed.
     * @param {Message} message
     * @param {boolean | null} positive
     * @returns {Promise<Message>}
     */
    async setFeedback(message, positive) {
      const properties = { ...(message.properties ?? {}), positive_feedback: positive }
      return (await send('PUT', `/api/v1/monitor/messages/${seg(message.id)}`, { body: { properties } })).json()
    },

    /**
     * Copies the session up to and including `upToMessageId` into a new session (its ID generated by the
     * server); answers the new session's summary.
     * @param {string} flowId
     * @param {string} sessionId
     * @param {string} upToMessageId
     * @returns {Promise<Session>}
     */
    async forkSession(flowId, sessionId, upToMessageId) {
      const target = url(`/api/v1/monitor/sessions/${seg(sessionId)}/fork`, { flow_id: flowId })
      return (await send('POST', target, { body: { up_to_message_id: upToMessageId } })).json()
    },
  }
}

/**
 * The limit that applies to a flow's sessions, from GET /api/v1/monitor/retention?flow_id=… (its `effective`).
 * @param {any} body
 * @returns {Retention}
 */
export function effectiveRetention(body) {
  const effective = body?.effective
  const source = effective?.source
  return {
    max_idle_seconds: typeof effective?.max_idle_seconds === 'number' ? effective.max_idle_seconds : null,
    source: source === 'flow' || source === 'tenant' ? source : 'none',
  }
}
