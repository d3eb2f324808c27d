import { FLOW_ID_HEADER, SESSION_ID_HEADER } from '@session-runtime/schemas'
import { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from 'fastify'

export interface RequestLogOptions {
  /**
   * The level of the one line per request: `info` at the gateway (the public entry: one line per client
   * request), `debug` in the services behind it (their requests are hops of a request the gateway logs).
   */
  level: 'info' | 'debug'
  /** The URL as logged; default: as received. The gateway takes the API key out of it. */
  url?: (request: FastifyRequest) => string
  /**
   * Routes (as registered, e.g. `/health`) whose line is written at `debug` while they answer below 400: probes
   * and scrapes, polled every few seconds, would otherwise outnumber the requests worth reading.
   */
  quietRoutes?: readonly string[]
}

/** pino's levels; a logger at a level not named here (`silent`) writes nothing. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }
const writes = (loggerLevel: string, level: string) =>
  (LEVELS[loggerLevel] ?? Number.POSITIVE_INFINITY) <= (LEVELS[level] ?? 0)

/** Status logged for a request whose client went away before any status was sent (nginx's "client closed request"). */
export const CLIENT_CLOSED_STATUS = 499

/**
 * Fastify's own request logging, replaced (the `logController` server option): one `request completed` line
 * per request, written when its response is closed — sent whole, or cut off by a client that went away — with
 * `method`, `url`, `statusCode`, `durationMs`, `tenant`, and the `flowId` / `sessionId` bound to the request's
 * log (`nameRequestSubject`, `takeRequestSubject`); `reqId` comes with every line of a request. Fastify's
 * `incoming request` line is kept, at `debug`. A client that went away is not an error: its line says
 * `clientClosed: true` (and status 499 if nothing was sent yet). Errors are logged where they happen (the error
 * envelope logs every 5xx at `error`), not here.
 */
export class RequestLog extends LogController {
  readonly #level: 'info' | 'debug'
  readonly #url: (request: FastifyRequest) => string
  readonly #quietRoutes: ReadonlySet<string>

  constructor(opts: RequestLogOptions) {
    super()
    this.#level = opts.level
    this.#url = opts.url ?? ((request) => request.url)
    this.#quietRoutes = new Set(opts.quietRoutes ?? [])
  }

  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    request.log.debug({ req: request }, 'incoming request')
    // at a level that writes nothing (the services at `info`), nothing is watched
    if (!writes(request.log.level, this.#level)) return
    // 'close' comes once for every response, whole or cut off (then without 'finish'); Fastify's requestCompleted
    // only for a whole one. (`writableFinished` would do on a socket, but inject()'s response never sets it.)
    let whole = false
    reply.raw.once('finish', () => {
      whole = true
    })
    reply.raw.once('close', () => this.#completed(request, reply, whole))
  }

  /** A response whose writing failed (the stream behind it broke) is an error; the line comes on 'close'. */
  override requestCompleted(error: Error | null | undefined, _request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ err: error }, 'response failed while being sent')
  }

  /** A client that closed a response under way is not the service's failure: `debug` (the line says clientClosed). */
  override streamError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if ((error as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      reply.log.debug('stream closed prematurely')
    } else super.streamError(error, request, reply)
  }

  #completed(request: FastifyRequest, reply: FastifyReply, whole: boolean): void {
    const statusCode = whole || reply.raw.headersSent ? reply.statusCode : CLIENT_CLOSED_STATUS
    const quiet = statusCode < 400 && this.#quietRoutes.has(request.routeOptions.url ?? '')
    request.log[quiet ? 'debug' : this.#level](
      {
        method: request.method,
        url: this.#url(request),
        statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
        ...(request.tenant ? { tenant: request.tenant } : {}),
        ...(whole ? {} : { clientClosed: true }),
      },
      'request completed',
    )
  }
}

/** The flow and the session a request concerns. */
export interface RequestSubject {
  flowId?: string | undefined
  sessionId?: string | undefined
}

/**
 * In a service: names the flow and the session the request concerns, once known. Every later log line of the
 * request carries them (`flowId`, `sessionId`), and so does the answer, in `x-flow-id` / `x-session-id`, for
 * the gateway's line; once the answer's headers are sent (a stream under way), only the log lines do.
 */
export function nameRequestSubject(request: FastifyRequest, reply: FastifyReply, subject: RequestSubject): void {
  if (!bindSubject(request, reply, subject) || reply.raw.headersSent) return
  if (subject.flowId) reply.header(FLOW_ID_HEADER, encodeURIComponent(subject.flowId))
  if (subject.sessionId) reply.header(SESSION_ID_HEADER, encodeURIComponent(subject.sessionId))
}

/**
 * At the gateway (an onSend hook): takes the flow and session the service behind named out of its answer — the
 * headers are not passed on — and binds them to the request's log lines, its `request completed` line included.
 */
export function takeRequestSubject(request: FastifyRequest, reply: FastifyReply): void {
  const take = (name: string) => {
    const value = reply.getHeader(name)
    if (value === undefined) return undefined
    reply.removeHeader(name)
    return typeof value === 'string' ? decoded(value) : undefined
  }
  bindSubject(request, reply, { flowId: take(FLOW_ID_HEADER), sessionId: take(SESSION_ID_HEADER) })
}

function decoded(value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

/** Adds the subject's fields to every later log line of the request, the reply's included; false: nothing to add. */
function bindSubject(request: FastifyRequest, reply: FastifyReply, subject: RequestSubject): boolean {
  const bindings: Record<string, string> = {}
  if (subject.flowId) bindings.flowId = subject.flowId
  if (subject.sessionId) bindings.sessionId = subject.sessionId
  if (Object.keys(bindings).length === 0) return false
  const log = request.log as FastifyBaseLogger & { setBindings?: (bindings: Record<string, string>) => void }
  if (typeof log.setBindings === 'function' && log !== request.server.log) {
    // The request's own logger (Fastify makes one per request, for its reqId) takes the fields in place: a
    // child logger per request was ~2% of the gateway's profiled time per proxied run.
    log.setBindings(bindings)
  } else {
    request.log = request.log.child(bindings)
  }
  reply.log = request.log
  return true
}
