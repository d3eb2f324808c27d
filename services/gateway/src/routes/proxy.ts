import { type Readable, Transform } from 'node:stream'
import proxy from '@fastify/http-proxy'
import rateLimit from '@fastify/rate-limit'
import { INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { Agent, type Dispatcher } from 'undici'
import { API_KEY_HEADER, withoutApiKeyParam } from '../api-keys.js'
import { Errors } from '../errors.js'
import { EventStreamWatch } from '../event-stream-watch.js'

export interface Upstream {
  /** Public path prefix, forwarded unchanged. */
  prefix: string
  url: string
  name: string
}

export interface ProxyOptions {
  upstreams: Upstream[]
  internalToken: string
  bodyLimit: number
  /** Requests per API key per window; 0: no limit. */
  rateLimit: { max: number; windowMs: number }
}

/**
 * Headers of the caller's connection to the gateway, never forwarded: `expect: 100-continue` (curl sends it
 * for bodies over 1 KiB) is answered by the gateway's own server, the others name the hop's framing.
 */
const HOP_BY_HOP = ['expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

/** Connection failures: the downstream is not there (or went away), so retrying later may help. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ECONNRESET', 'UND_ERR_SOCKET'])

/** A failure to reach a downstream, named in the envelope: 503 unreachable, 504 timed out, else 502. */
function upstreamError(name: string, error: FastifyError): FastifyError {
  const cause = (error.cause as { code?: string } | undefined)?.code ?? error.code
  if (error.statusCode === 503 || UNREACHABLE.has(cause)) return new Errors.UpstreamUnavailable(name)
  if (error.statusCode === 504) return new Errors.UpstreamTimeout(name)
  return new Errors.UpstreamFailed(name)
}

/** What a client of a broken streamed run is told, as the stream's last event. */
export function brokenStreamMessage(upstream: string, requestId: string): string {
  return `The ${upstream} stopped answering during the run, so the run's outcome is unknown (request id ${requestId})`
}

/**
 * A streamed answer (`text/event-stream`) passed on chunk by chunk as it arrives, with one `error` event added
 * at its end when it stops (the connection to the service cut, or its body ended) without a last `end` or
 * `error` event: the stream never just stops (spec §3). Nothing is added after a final event, nor for a client
 * that went away: then the answer from upstream is dropped (and its request cancelled, see the pool below).
 */
function guardEventStream(
  body: Readable,
  closing: { message: () => string; onAppend: (cause: string) => void },
): Readable {
  const watch = new EventStreamWatch()
  let cause = 'the body ended without an end or error event'
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      watch.push(chunk)
      done(null, chunk)
    },
    flush(done) {
      const tail = watch.closing(closing.message())
      if (tail) closing.onAppend(cause)
      done(null, tail || undefined)
    },
  })
  body.on('error', (error: Error & { code?: string }) => {
    cause = `the connection broke off (${error.code ?? error.name})`
  })
  body.once('close', () => {
    // ended: pipe() has ended `out` already; `out` gone: the client went away
    if (body.readableEnded || out.destroyed || out.writableEnded) return
    body.unpipe(out)
    out.end()
  })
  out.once('close', () => {
    if (!body.readableEnded) body.destroy()
  })
  body.pipe(out)
  return out
}

/**
 * The public routes: every request needs an API key; the services behind see
 * the gateway's internal token, the key's tenant and the edge's request ID,
 * never the caller's key or any trusted header the caller sent. Responses
 * (streamed runs included) pass through unbuffered.
 */
export default async function proxyRoutes(app: FastifyInstance, opts: ProxyOptions) {
  app.addHook('onRequest', async (request) => {
    await app.requireApiKey(request)
    const length = Number(request.headers['content-length'] ?? 0)
    if (length > opts.bodyLimit) throw new Errors.PayloadTooLarge(opts.bodyLimit)
  })

  if (opts.rateLimit.max > 0) {
    const { max, windowMs } = opts.rateLimit
    // Its hooks belong to each route, so they run after the key check above: counted per key, never per IP.
    await app.register(rateLimit, {
      max,
      timeWindow: windowMs,
      keyGenerator: (request) => request.apiKeyId,
      errorResponseBuilder: () => new Errors.RateLimited(max, Math.ceil(windowMs / 1000)),
    })
  }

  // A caller that goes away cancels its forwarded request, so the service behind stops too (a run stops
  // calling its model). @fastify/reply-from has no per-request signal for undici: the pool below finds
  // the request's signal by the request ID the gateway itself puts in the forwarded headers.
  const cancels = new Map<string, AbortController>()
  app.addHook('onRequest', async (request, reply) => {
    const cancel = new AbortController()
    cancels.set(request.id, cancel)
    reply.raw.once('close', () => {
      cancels.delete(request.id)
      if (!reply.raw.writableFinished) cancel.abort(new Error('the client closed the connection'))
    })
  })
  const cancellable = (pool: Dispatcher) => ({
    request(options: Dispatcher.RequestOptions, callback: (err: Error | null, data: Dispatcher.ResponseData) => void) {
      const id = (options.headers as Record<string, unknown> | undefined)?.[REQUEST_ID_HEADER]
      const signal = typeof id === 'string' ? cancels.get(id)?.signal : undefined
      return pool.request(signal ? { ...options, signal } : options, callback)
    },
    close: () => pool.close(),
    destroy: () => pool.destroy(),
  })

  const rewriteRequestHeaders = (request: FastifyRequest, headers: Record<string, unknown>) => {
    const out = { ...headers }
    delete out[API_KEY_HEADER]
    // hop-by-hop: they concern the caller's connection only (undici refuses to forward them: a 502)
    for (const name of HOP_BY_HOP) delete out[name]
    out[INTERNAL_TOKEN_HEADER] = opts.internalToken
    out[TENANT_HEADER] = request.tenant
    out[REQUEST_ID_HEADER] = request.id
    return out as typeof headers
  }

  for (const upstream of opts.upstreams) {
    // keep-alive connections to each downstream; closed with the app (reply-from leaves given pools open)
    const pool = new Agent({ connections: 128, pipelining: 1, keepAliveTimeout: 30_000 })
    app.addHook('onClose', async () => pool.destroy())
    await app.register(proxy, {
      upstream: upstream.url,
      prefix: upstream.prefix,
      rewritePrefix: upstream.prefix,
      undici: cancellable(pool) as never,
      replyOptions: {
        rewriteRequestHeaders: rewriteRequestHeaders as never,
        // the caller's query string, without the key
        queryString: (_search, reqUrl) => {
          const url = withoutApiKeyParam(reqUrl)
          const q = url.indexOf('?')
          return q === -1 ? '' : url.slice(q + 1)
        },
        onError: (reply, { error }) => reply.send(upstreamError(upstream.name, error as FastifyError)),
        // reply-from's default is `reply.send(res.stream)`; streamed runs get their last event guaranteed
        onResponse: (request, reply, res) => {
          const body = res.stream as Readable
          if (!/^text\/event-stream\b/i.test(String(reply.getHeader('content-type') ?? ''))) return reply.send(body)
          reply.removeHeader('content-length')
          reply.send(
            guardEventStream(body, {
              message: () => brokenStreamMessage(upstream.name, request.id),
              onAppend: (cause) =>
                request.log.warn(
                  { upstream: upstream.name, cause },
                  'streamed answer broke off without an end or error event: error event appended',
                ),
            }),
          )
        },
      },
    })
  }
}
