import swaggerUi from '@fastify/swagger-ui'
import { INTERNAL_TOKEN_HEADER, OPENAPI_DOCUMENT_PATH } from '@session-runtime/schemas'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { API_KEY_HEADER } from '../../domain/api-keys.js'
import { createDocumentCache, type DocumentSource } from '../../domain/openapi/downstream.js'
import { mergeOpenApi, type OpenApiDocument } from '../../domain/openapi/merge.js'
import type { Upstream } from '../../domain/upstreams.js'
import { API_INFO } from '../../plugins/external/swagger.js'

export interface DocsOptions {
  /** The proxied prefixes and who serves them: their paths come from that service's own document. */
  upstreams: readonly Upstream[]
  internalToken: string
  /** Per downstream document fetch. */
  timeoutMs: number
  /** How long a fetched document is used before it is fetched again. */
  ttlMs?: number
}

/**
 * Swagger UI's CSP: its scripts, styles and the document come from the gateway itself (no CDN, no inline
 * script); its components set inline styles, hence `'unsafe-inline'` for styles only.
 */
export const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/** Group the proxied prefixes by downstream. */
function sourcesOf(upstreams: readonly Upstream[]): DocumentSource[] {
  const byName = new Map<string, DocumentSource & { prefixes: string[] }>()
  for (const { name, urls, prefix } of upstreams) {
    const source = byName.get(name) ?? { name, urls, prefixes: [] }
    source.prefixes.push(prefix)
    byName.set(name, source)
  }
  return [...byName.values()]
}

/**
 * `/docs` (Swagger UI, assets served from the package) and `/docs/json` / `/docs/yaml`: the gateway's own
 * routes (the document of plugins/external/swagger) plus the run-service's and message-store's generated
 * documents, merged. Registered outside the proxied routes, so no API key is needed.
 */
async function docs(app: FastifyInstance, opts: DocsOptions) {
  const cache = createDocumentCache({
    sources: sourcesOf(opts.upstreams),
    path: OPENAPI_DOCUMENT_PATH,
    tokenHeader: INTERNAL_TOKEN_HEADER,
    internalToken: opts.internalToken,
    timeoutMs: opts.timeoutMs,
    ttlMs: opts.ttlMs ?? 60_000,
  })

  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // no validator badge: it would call validator.swagger.io
    uiConfig: { docExpansion: 'list', deepLinking: true, validatorUrl: null },
    staticCSP: DOCS_CSP,
    uiHooks: {
      // transformSpecification is synchronous: the documents are fetched (if stale) before it runs.
      onRequest: async (request) => {
        const url = request.routeOptions.url ?? ''
        if (url.endsWith('/json') || url.endsWith('/yaml')) await cache.refresh()
      },
    },
    transformSpecificationClone: false,
    transformSpecification: (gateway) =>
      mergeOpenApi({
        gateway: gateway as OpenApiDocument,
        downstreams: cache.parts(),
        apiKeyName: API_KEY_HEADER,
        info: API_INFO,
      }),
  })
}

export default fp(docs, { name: 'gateway-docs', dependencies: ['gateway-swagger'] })
