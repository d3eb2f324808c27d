import { hash, timingSafeEqual } from 'node:crypto'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { CommonErrors } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: the caller must be a service holding INTERNAL_TOKEN and name a tenant. */
    requireInternalCaller: (request: FastifyRequest) => Promise<void>
    /** onRequest hook: the caller must be a service holding INTERNAL_TOKEN (no tenant: e.g. the OpenAPI document). */
    requireInternalToken: (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    /** The tenant named by the trusted `x-tenant-id` header. */
    tenant: string
  }
}

// Hashed to compare equal lengths in constant time. The one-shot `hash` (Node 20.12+): no Hash object per
// request, which createHash().update().digest() built on every internal call (seen in the message-store's profile).
const digest = (value: string) => hash('sha256', value, 'buffer')

export interface InternalAuthOptions {
  internalToken: string
  errors: Pick<CommonErrors, 'Unauthorized' | 'MissingTenant'>
}

/**
 * Only the other services reach a service. They prove it with the shared
 * INTERNAL_TOKEN (compared in constant time) and name the caller's tenant in
 * `x-tenant-id`, which the gateway sets from the API key.
 */
async function internalAuth(app: FastifyInstance, { internalToken, errors: Errors }: InternalAuthOptions) {
  const expected = digest(internalToken)
  app.decorateRequest('tenant', '')
  const requireInternalToken = async (request: FastifyRequest) => {
    const token = request.headers[INTERNAL_TOKEN_HEADER]
    if (typeof token !== 'string' || !timingSafeEqual(digest(token), expected)) throw new Errors.Unauthorized()
  }
  app.decorate('requireInternalToken', requireInternalToken)
  app.decorate('requireInternalCaller', async (request: FastifyRequest) => {
    await requireInternalToken(request)
    const tenant = request.headers[TENANT_HEADER]
    if (typeof tenant !== 'string' || tenant.length === 0 || tenant.length > 255 || tenant.includes('\0'))
      throw new Errors.MissingTenant(TENANT_HEADER)
    request.tenant = tenant
  })
}

export default fp(internalAuth, { name: 'internal-auth' })
