import proxy from '@fastify/http-proxy'
import { INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { API_KEY_HEADER, withoutApiKeyParam } from '../api-keys.js'
import { Errors } from '../errors.js'

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
}

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

  const rewriteRequestHeaders = (request: FastifyRequest, headers: Record<string, unknown>) => {
    const out = { ...headers }
    delete out[API_KEY_HEADER]
    out[INTERNAL_TOKEN_HEADER] = opts.internalToken
    out[TENANT_HEADER] = request.tenant
    out[REQUEST_ID_HEADER] = request.id
    return out as typeof headers
  }

  for (const upstream of opts.upstreams) {
    await app.register(proxy, {
      upstream: upstream.url,
      prefix: upstream.prefix,
      rewritePrefix: upstream.prefix,
      // keep-alive connections to each downstream
      undici: { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 },
      replyOptions: {
        rewriteRequestHeaders: rewriteRequestHeaders as never,
        // the caller's query string, without the key
        queryString: (_search, reqUrl) => {
          const url = withoutApiKeyParam(reqUrl)
          const q = url.indexOf('?')
          return q === -1 ? '' : url.slice(q + 1)
        },
        onError: (reply, { error }) => reply.send(upstreamError(upstream.name, error as FastifyError)),
      },
    })
  }
}
