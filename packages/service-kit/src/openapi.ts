import swagger from '@fastify/swagger'
import { ErrorEnvelope, OPENAPI_DOCUMENT_PATH } from '@session-runtime/schemas'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'

export interface OpenApiOptions {
  /** The service's name, the document's title. */
  title: string
  description: string
  /**
   * The public routes, by path prefix, each with its tag. A route under none of them
   * (`/internal/*`, `/health`, `/metrics`, …) is left out of the document.
   */
  tags: ReadonlyArray<{ prefix: string; name: string; description: string }>
}

const OpenApiDocument = Type.Object({ openapi: Type.String() }, { additionalProperties: true })

/**
 * The OpenAPI 3.1 document of a service's public routes, generated from the route schemas of
 * every route registered after this plugin. Served to the internal network only (the internal
 * token, no tenant), at OPENAPI_DOCUMENT_PATH; the gateway merges the services' documents into its `/docs`.
 */
async function openapi(app: FastifyInstance, opts: OpenApiOptions) {
  const tagOf = (url: string) => opts.tags.find(({ prefix }) => url.startsWith(prefix))?.name
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: opts.title, version: '0.1.0', description: opts.description },
      tags: opts.tags.map(({ name, description }) => ({ name, description })),
    },
    transform: ({ schema, url }) => {
      const tag = tagOf(url)
      const base = (schema ?? {}) as FastifySchema & { tags?: string[]; hide?: boolean }
      return { url, schema: tag ? { ...base, tags: base.tags ?? [tag] } : { ...base, hide: true } }
    },
  })

  app.get(
    OPENAPI_DOCUMENT_PATH,
    {
      onRequest: app.requireInternalToken,
      schema: { hide: true, response: { 200: OpenApiDocument, 401: ErrorEnvelope } },
    },
    async () => app.swagger(),
  )
}

export default fp(openapi, { name: 'openapi', dependencies: ['internal-auth'] })
