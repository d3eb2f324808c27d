import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { API_KEY_HEADER, type ApiKeyEntry, entryOf, keyIdOf } from '../api-keys.js'
import { Errors } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: the caller must present a known API key (header or query); sets `request.tenant`. */
    requireApiKey: (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    /** The presented key's id (keyIdOf): safe to log, used by the rate limit. Empty before auth. */
    apiKeyId: string
  }
}

export interface AuthOptions {
  keys: readonly ApiKeyEntry[]
}

/** The presented key: the `x-api-key` header, else the `?x-api-key=` query parameter. */
function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers[API_KEY_HEADER]
  if (typeof header === 'string' && header !== '') return header
  const query = (request.query as Record<string, unknown> | undefined)?.[API_KEY_HEADER]
  const value = Array.isArray(query) ? query[0] : query
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** API keys → tenant, Langflow-like: no key is a 401, an unknown key a 403. */
async function auth(app: FastifyInstance, { keys }: AuthOptions) {
  if (!app.hasRequestDecorator('tenant')) app.decorateRequest('tenant', '')
  app.decorateRequest('apiKeyId', '')
  app.decorate('requireApiKey', async (request: FastifyRequest) => {
    const key = presentedKey(request)
    if (key === undefined) throw new Errors.MissingApiKey()
    const entry = entryOf(keys, key)
    if (entry === undefined) throw new Errors.InvalidApiKey()
    request.tenant = entry.tenant
    request.apiKeyId = keyIdOf(entry)
  })
}

export default fp(auth, { name: 'gateway-auth' })
