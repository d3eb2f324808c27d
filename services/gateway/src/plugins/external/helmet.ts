import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/**
 * The API answers JSON and event streams only: its CSP allows nothing to load, run or frame. HSTS stays on
 * the host it was sent by (behind a TLS proxy; browsers ignore it over plain HTTP).
 */
const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: 'deny' },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
}

/** What helmet does to a response: the headers it sets, in its order, and those it removes. */
interface HelmetHeaders {
  set: [name: string, value: string][]
  removed: string[]
}

/**
 * helmet's headers for `options`, found once by running its middleware on a recording response. With no nonce
 * and no directive computed per request (none here) they are the same for every answer; @fastify/helmet built
 * the middleware again on every request (parsing the options and the CSP directives each time: 3–4% of the
 * gateway's profiled time per proxied run, docs/benchmarks.md 2026-12-07).
 */
export function helmetHeaders(options: HelmetOptions): HelmetHeaders {
  const headers: HelmetHeaders = { set: [], removed: [] }
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers.set.push([name, String(value)])
    },
    removeHeader: (name: string) => {
      headers.removed.push(name)
    },
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error
  })
  return headers
}

/** Hardened headers on every answer; /docs and /playground/ replace the CSP with their own (routes/*). */
async function gatewayHelmet(app: FastifyInstance) {
  const { set, removed } = helmetHeaders(HELMET_OPTIONS)
  // on the raw response, as helmet sets them: a route's own header (the pages' CSP) replaces one of these
  app.addHook('onRequest', (_request, reply, done) => {
    const raw = reply.raw
    for (const [name, value] of set) raw.setHeader(name, value)
    for (const name of removed) raw.removeHeader(name)
    done()
  })
}

export default fp(gatewayHelmet, { name: 'gateway-helmet' })
