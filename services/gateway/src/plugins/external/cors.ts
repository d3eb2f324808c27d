import cors from '@fastify/cors'
import { NEXT_CURSOR_HEADER, REQUEST_ID_HEADER } from '@session-runtime/schemas'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export interface GatewayCorsOptions {
  /** CORS_ORIGINS: `*`, or a comma-separated list; empty: no CORS headers at all. */
  origins: string
}

/**
 * CORS for browsers on other origins. Registered first: it answers browsers' preflight requests before any
 * key is asked for.
 */
async function gatewayCors(app: FastifyInstance, opts: GatewayCorsOptions) {
  const origins = opts.origins
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean)
  if (origins.length === 0) return
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    exposedHeaders: [
      REQUEST_ID_HEADER,
      NEXT_CURSOR_HEADER,
      'retry-after',
      'x-ratelimit-limit',
      'x-ratelimit-remaining',
    ],
    maxAge: 600,
  })
}

export default fp(gatewayCors, { name: 'gateway-cors' })
