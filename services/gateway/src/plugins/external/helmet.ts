import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * The API answers JSON and event streams only: its CSP allows nothing to load, run or frame. HSTS stays on
 * the host it was sent by (behind a TLS proxy; browsers ignore it over plain HTTP).
 */
const HELMET_OPTIONS = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: 'deny' as const },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
}

/** Hardened headers on every answer; /docs and /playground/ replace the CSP with their own (routes/*). */
async function gatewayHelmet(app: FastifyInstance) {
  await app.register(helmet, HELMET_OPTIONS)
}

export default fp(gatewayHelmet, { name: 'gateway-helmet' })
