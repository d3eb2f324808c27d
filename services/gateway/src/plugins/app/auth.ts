import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { API_KEY_HEADER, type ApiKeyEntry, entryOf, keyIdOf, loadApiKeys } from '../../domain/api-keys.js'
import { Errors } from '../../errors.js'

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
  /** Accepted keys; default: from `apiKeys` (API_KEYS), else DATA_DIR/gateway-keys.json, else a created `default` key. */
  keys?: readonly ApiKeyEntry[] | undefined
  /** API_KEYS: `tenant=key,tenant2=key2`. */
  apiKeys: string
  /** DATA_DIR: where a created key's hash is kept. */
  dataDir: string
  /** Shows a key created at this start, once; default: stdout. */
  printCreatedKey?: ((line: string) => void) | undefined
}

/** The given keys, else the configured ones; a key created now is shown once. */
function acceptedKeys(opts: AuthOptions): readonly ApiKeyEntry[] {
  if (opts.keys) return opts.keys
  const loaded = loadApiKeys(opts.apiKeys, opts.dataDir)
  if (loaded.createdKey) {
    const where = loaded.file ? `only its SHA-256 is stored in ${loaded.file}` : 'it is kept in memory only'
    ;(opts.printCreatedKey ?? console.log)(
      `gateway: created API key for tenant "default" (shown once; ${where}): ${loaded.createdKey}`,
    )
  }
  return loaded.keys
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
async function auth(app: FastifyInstance, opts: AuthOptions) {
  const keys = acceptedKeys(opts)
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
