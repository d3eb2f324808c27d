import proxy from '@fastify/http-proxy'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import Fastify from 'fastify'
import { serveWhenTold } from './forked-server.js'

/**
 * The bench's bare proxy, run by run.ts in its own process like the gateway:
 * Fastify + @fastify/http-proxy with the gateway's undici settings, forwarding
 * /api/v1/run and /api/v1/monitor with the internal headers set, and nothing
 * else (no key check, request ID, metrics, rate limit or error envelope). The
 * gap between it and the direct call is the cost of any HTTP hop; between it
 * and the gateway, the cost of what the gateway does per request.
 */

export interface BareProxyStart {
  runServiceUrl: string
  messageStoreUrl: string
  internalToken: string
  tenant: string
}

serveWhenTold(async (msg: BareProxyStart) => {
  const app = Fastify({ logger: { level: 'warn' } })
  const rewriteRequestHeaders = (_request: unknown, headers: Record<string, unknown>) => {
    const out = { ...headers }
    delete out['x-api-key']
    out[INTERNAL_TOKEN_HEADER] = msg.internalToken
    out[TENANT_HEADER] = msg.tenant
    return out
  }
  for (const [prefix, upstream] of [
    ['/api/v1/run', msg.runServiceUrl],
    ['/api/v1/monitor', msg.messageStoreUrl],
  ] as const) {
    await app.register(proxy, {
      upstream,
      prefix,
      rewritePrefix: prefix,
      undici: { connections: 4096, pipelining: 1, keepAliveTimeout: 30_000 },
      replyOptions: { rewriteRequestHeaders: rewriteRequestHeaders as never },
    })
  }
  return app
})
