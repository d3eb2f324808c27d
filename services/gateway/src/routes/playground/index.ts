import { fileURLToPath } from 'node:url'
import fastifyStatic, { type SetHeadersResponse } from '@fastify/static'
import type { FastifyInstance } from 'fastify'

/** The page's sources (plain ES modules, no build step): services/gateway/playground/. */
export const PLAYGROUND_DIR = fileURLToPath(new URL('../../../playground/', import.meta.url))

/**
 * Only the gateway's own origin: the page loads nothing from elsewhere, runs no inline script, and calls
 * the public API on the same origin.
 */
export const PLAYGROUND_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/** Assets may be cached for an hour; the HTML shell is revalidated (ETag) on every load, so updates show. */
export const ASSET_CACHE_CONTROL = 'public, max-age=3600'
export const SHELL_CACHE_CONTROL = 'no-cache'

function setHeaders(res: SetHeadersResponse, path: string) {
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('referrer-policy', 'no-referrer')
  if (path.endsWith('.html')) {
    res.setHeader('cache-control', SHELL_CACHE_CONTROL)
    res.setHeader('content-security-policy', PLAYGROUND_CSP)
  } else {
    res.setHeader('cache-control', ASSET_CACHE_CONTROL)
  }
}

export interface PlaygroundOptions {
  /** Where the page's files are; default PLAYGROUND_DIR. */
  root?: string
}

/**
 * `/playground/`: the Playground page (sessions of a flow, their conversations), served without an API key;
 * the page itself asks for one and calls the public API with it. Registered outside the proxied routes.
 * Encapsulated: @fastify/static's reply decorations stay here. Hidden from the OpenAPI document.
 */
export default async function playground(app: FastifyInstance, opts: PlaygroundOptions) {
  // The gateway's API CSP (helmet) is not for these files: the shell gets PLAYGROUND_CSP (setHeaders), and
  // a CSP only means something on the document, whose CSP governs the scripts and styles it loads.
  app.addHook('onRequest', async (_request, reply) => {
    reply.raw.removeHeader('content-security-policy')
  })
  await app.register(fastifyStatic, {
    root: opts.root ?? PLAYGROUND_DIR,
    prefix: '/playground/',
    // one route per file, found at start: nothing else under /playground/ is served
    wildcard: false,
    index: false,
    cacheControl: false,
    etag: true,
    lastModified: true,
    serveDotFiles: false,
    schemaHide: true,
    setHeaders,
  })

  // The router ignores trailing slashes, so `/playground` reaches this route too: it is redirected, because
  // the shell's relative asset URLs need the slash.
  app.get('/playground/', { schema: { hide: true } }, (request, reply) => {
    const [path = '', query] = request.url.split('?', 2)
    if (!path.endsWith('/')) return reply.redirect(`/playground/${query === undefined ? '' : `?${query}`}`, 301)
    return reply.sendFile('index.html')
  })
}
