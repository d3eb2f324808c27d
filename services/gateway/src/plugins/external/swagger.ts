import swagger from '@fastify/swagger'
import type { FastifyInstance, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import { API_KEY_HEADER } from '../../domain/api-keys.js'

/** The API reference's title and introduction (the merged document's `info`). */
export const API_INFO = {
  title: 'Session runtime API',
  version: '0.1.0',
  description:
    'A Langflow-compatible API: run flows, manage flows, read and edit the message history. Every `/api/v1/*` ' +
    `route needs an API key in the \`${API_KEY_HEADER}\` header (or the \`?${API_KEY_HEADER}=\` query parameter); ` +
    'errors are `{ "detail", "code" }`.',
}

export interface GatewaySwaggerOptions {
  /** The proxied prefixes: their paths come from the services' own documents, so the gateway's are hidden. */
  proxiedPrefixes: readonly string[]
}

/**
 * The gateway's own OpenAPI document (served, merged with the services' documents, by routes/docs). Must be
 * registered before the routes it documents.
 */
async function gatewaySwagger(app: FastifyInstance, opts: GatewaySwaggerOptions) {
  const isProxied = (url: string) =>
    opts.proxiedPrefixes.some((prefix) => url === prefix || url.startsWith(`${prefix}/`))
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: API_INFO,
      tags: [{ name: 'Gateway', description: 'Liveness and readiness of the whole stack (no API key)' }],
    },
    // The gateway's own routes; the proxied ones are described by the services' documents.
    transform: ({ schema, url }) => {
      const base = (schema ?? {}) as FastifySchema & { tags?: string[]; hide?: boolean }
      return { url, schema: isProxied(url) ? { ...base, hide: true } : { ...base, tags: base.tags ?? ['Gateway'] } }
    },
  })
}

export default fp(gatewaySwagger, { name: 'gateway-swagger' })
