import type { Readable } from 'node:stream'
import proxy from '@fastify/http-proxy'
import { INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { API_KEY_HEADER, withoutApiKeyParam } from '../../domain/api-keys.js'
import { brokenStreamMessage, guardEventStream } from '../../domain/event-stream-guard.js'
import { failureCode, mayRetryElsewhere } from '../../domain/retry-policy.js'
import type { Upstream } from '../../domain/upstreams.js'
import { Errors } from '../../errors.js'
import rateLimit, { type GatewayRateLimitOptions } from '../../plugins/external/rate-limit.js'

export interface ProxyOptions {
  upstreams: readonly Upstream[]
  internalToken: string
  /** Requests per API key per window; 0: no limit. */
  rateLimit: GatewayRateLimitOptions
}

/**
 * Headers of the caller's connection to the gateway, never forwarded: `expect: 100-continue` (curl sends it
 * for bodies over 1 KiB) is answered by the gateway's own server, the others name the hop's framing.
 */
const HOP_BY_HOP = ['expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

/**
 * The caller's headers the services behind never see: its key, the hop-by-hop ones (undici refuses to forward
 * them: a 502), and `host` (reply-from names the first instance; undici then names the one the request goes to).
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set([API_KEY_HEADER, ...HOP_BY_HOP, 'host'])

/** Connection failures: the downstream is not there (or went away), so retrying later may help. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ECONNRESET', 'UND_ERR_SOCKET'])

/** A failure to reach a downstream, named in the envelope: 503 unreachable, 504 timed out, else 502. */
function upstreamError(name: string, error: FastifyError): FastifyError {
  const cause = (error.cause as { code?: string } | undefined)?.code ?? error.code
  if (error.statusCode === 503 || UNREACHABLE.has(cause)) return new Errors.UpstreamUnavailable(name)
  if (error.statusCode === 504) return new Errors.UpstreamTimeout(name)
  return new Errors.UpstreamFailed(name)
}

/**
 * What @fastify/reply-from's `retryDelay` is given about a failed attempt (`req`: the forwarded request;
 * `getDefaultDelay`: its own rule, which retries a GET answered 503).
 */
interface RetryContext {
  err: Error | null
  req: { method: string }
  res: unknown
  attempt: number
  getDefaultDelay: (req: unknown, res: unknown, err: Error | null, attempt: number) => number | null
}

/** A body sent without a Content-Type is forwarded as bytes (RFC 9110 §8.3). */
const OCTET_STREAM = 'application/octet-stream'

/**
 * Every body of the routes registered in `scope` is read whole, by Fastify's own limit-aware reader, before
 * anything is forwarded: a body over `limit` is the gateway's 413 (`GATEWAY_PAYLOAD_TOO_LARGE`) whether it
 * announces its length (refused before any of it is read) or comes chunked (refused as soon as the count passes
 * the limit; the rest is read and dropped, so the connection stays usable). The service behind never sees it:
 * streaming it on would let the service answer its own 413 while the gateway is still sending, which breaks
 * the forwarded request (a 502).
 */
function bufferedBodies(scope: FastifyInstance, limit: number) {
  scope.addHook('onRoute', (route) => {
    route.bodyLimit = limit
  })
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
}

/**
 * The public routes: every request needs an API key; the services behind see
 * the gateway's internal token, the key's tenant and the edge's request ID,
 * never the caller's key or any trusted header the caller sent. Responses
 * (streamed runs included) pass through unbuffered.
 */
export default async function proxyRoutes(app: FastifyInstance, opts: ProxyOptions) {
  // The key first; then a body announced larger than the route's limit is refused before any of it is read.
  app.addHook('onRequest', async (request) => {
    await app.requireApiKey(request)
    const limit = request.routeOptions.bodyLimit
    if (Number(request.headers['content-length'] ?? 0) > limit) throw new Errors.PayloadTooLarge(limit)
  })

  // Its hooks belong to each route, so they run after the key check above: counted per key, never per IP.
  await app.register(rateLimit, opts.rateLimit)

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
    // copied without the dropped names rather than copied whole and `delete`d: deleting turns the object into
    // a slow dictionary that undici then walks (the copy-and-delete was ~1% of the gateway's profiled time)
    const out: Record<string, unknown> = {}
    for (const name in headers) if (!NOT_FORWARDED.has(name)) out[name] = headers[name]
    out[INTERNAL_TOKEN_HEADER] = opts.internalToken
    out[TENANT_HEADER] = request.tenant
    out[REQUEST_ID_HEADER] = request.id
    return out as typeof headers
  }

  for (const upstream of opts.upstreams) {
    // keep-alive connections to the service's instances (plugins/external/upstream-pools, closed with the app)
    const service = app.servicePools.get(upstream.name)
    if (!service) throw new Error(`no pool for ${upstream.name}`)
    // a request that failed before any response goes to another instance when that is safe
    // (domain/retry-policy); at most once per other instance
    const retryDelay = ({ err, req, res, attempt, getDefaultDelay }: RetryContext) =>
      err && attempt < service.instances - 1 && mayRetryElsewhere(req.method, upstream.prefix, failureCode(err))
        ? 1
        : getDefaultDelay(req, res, err, attempt)
    await app.register(async (scope) => {
      bufferedBodies(scope, upstream.bodyLimit)
      await scope.register(proxy, {
        // the destination check and the forwarded URL's path; the pool picks the instance
        upstream: upstream.urls[0] as string,
        prefix: upstream.prefix,
        rewritePrefix: upstream.prefix,
        undici: cancellable(service.pool) as never,
        // the body is read by bufferedBodies (below) and forwarded whole, as the bytes the caller sent
        proxyPayloads: false,
        // no line per forwarded request: the gateway's one line per request says it all (plugins/app/access-log)
        disableRequestLogging: true,
        handler: (request, reply, dest, options) =>
          reply.from(
            dest,
            Buffer.isBuffer(request.body)
              ? { ...options, body: request.body, contentType: request.headers['content-type'] ?? OCTET_STREAM }
              : options,
          ),
        replyOptions: {
          retryDelay: retryDelay as never,
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
              guardEventStream(
                body,
                {
                  message: () => brokenStreamMessage(upstream.name, request.id),
                  onAppend: (cause) =>
                    request.log.warn(
                      { upstream: upstream.name, cause },
                      'streamed answer broke off without an end or error event: error event appended',
                    ),
                },
                upstream.streamFormat,
              ),
            )
          },
        },
      })
    })
  }
}
