import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const API_KEY_HEADER = 'x-api-key'
export const KEYS_FILE = 'gateway-keys.json'

/** One accepted key: only its SHA-256 is kept in memory and on disk. */
export interface ApiKeyEntry {
  tenant: string
  sha256: Buffer
}

export const sha256 = (value: string) => createHash('sha256').update(value).digest()

/** Parses `tenant=key,tenant2=key2`; throws naming the bad entry (never the key). */
export function parseApiKeys(value: string): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = []
  for (const [index, raw] of value.split(',').entries()) {
    const pair = raw.trim()
    if (pair === '') continue
    const at = pair.indexOf('=')
    const tenant = at > 0 ? pair.slice(0, at).trim() : ''
    const key = at > 0 ? pair.slice(at + 1).trim() : ''
    if (!tenant || !key || tenant.length > 255 || tenant.includes('\0')) {
      throw new Error(`API_KEYS: entry ${index + 1} is not tenant=key`)
    }
    entries.push({ tenant, sha256: sha256(key) })
  }
  return entries
}

/** The entry of a presented key, or undefined. Compares every stored hash in constant time. */
export function entryOf(keys: readonly ApiKeyEntry[], presented: string): ApiKeyEntry | undefined {
  const digest = sha256(presented)
  let found: ApiKeyEntry | undefined
  for (const entry of keys) {
    if (timingSafeEqual(digest, entry.sha256) && found === undefined) found = entry
  }
  return found
}

/** The tenant of a presented key, or undefined. */
export const tenantOf = (keys: readonly ApiKeyEntry[], presented: string): string | undefined =>
  entryOf(keys, presented)?.tenant

/** A name for a key that is safe to log and to count by: the first 8 bytes of its SHA-256, in hex. */
export const keyIdOf = (entry: ApiKeyEntry): string => entry.sha256.toString('hex', 0, 8)

export interface LoadedKeys {
  keys: ApiKeyEntry[]
  /** Set only when this start created the key: shown once, never stored. */
  createdKey?: string
  file?: string
}

interface KeysFile {
  keys: { tenant: string; sha256: string }[]
}

/**
 * API_KEYS if set; else the keys whose hashes are in DATA_DIR/gateway-keys.json;
 * else a new `default` tenant with a random key, of which only the hash is written.
 */
export function loadApiKeys(apiKeys: string, dataDir: string): LoadedKeys {
  const configured = parseApiKeys(apiKeys)
  if (configured.length > 0) return { keys: configured }
  const createdKey = `sk-${randomBytes(32).toString('base64url')}`
  const created = [{ tenant: 'default', sha256: sha256(createdKey) }]
  if (dataDir.startsWith('memory://')) return { keys: created, createdKey }
  const file = join(dataDir, KEYS_FILE)
  if (existsSync(file)) {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as KeysFile
    const keys = stored.keys.map((entry) => ({ tenant: entry.tenant, sha256: Buffer.from(entry.sha256, 'hex') }))
    if (keys.length === 0 || keys.some((entry) => entry.sha256.length !== 32 || !entry.tenant)) {
      throw new Error(`${file}: malformed; delete it to create a new key`)
    }
    return { keys, file }
  }
  mkdirSync(dataDir, { recursive: true })
  const body: KeysFile = { keys: [{ tenant: 'default', sha256: sha256(createdKey).toString('hex') }] }
  // `wx`: never overwrite a file another process created meanwhile.
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
  return { keys: created, createdKey, file }
}

/** A URL without its `x-api-key` query parameter (for logs and for the services behind the gateway). */
export function withoutApiKeyParam(url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const params = new URLSearchParams(url.slice(q + 1))
  if (!params.has(API_KEY_HEADER)) return url
  params.delete(API_KEY_HEADER)
  const rest = params.toString()
  return rest ? `${url.slice(0, q)}?${rest}` : url.slice(0, q)
}
