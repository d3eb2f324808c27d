import { isDeepStrictEqual } from 'node:util'

/**
 * Composes the public OpenAPI document: the gateway's own routes plus the paths and
 * components of each downstream's generated document, with the API-key security
 * applied to the proxied paths. Plain data in, plain data out (no Fastify here).
 */

type Json = Record<string, unknown>

export interface OpenApiDocument {
  openapi: string
  info: { title: string; version: string; description?: string; [key: string]: unknown }
  paths?: Record<string, Json>
  components?: Record<string, Record<string, unknown> | undefined>
  tags?: { name: string; description?: string }[]
  servers?: { url: string; description?: string }[]
  [key: string]: unknown
}

/** One downstream's part: its document, or why there is none. */
export interface DownstreamPart {
  /** The service's name, e.g. run-service (also the prefix of its renamed components). */
  name: string
  /** The public path prefixes the gateway forwards to it; its paths outside them are left out. */
  prefixes: readonly string[]
  document?: OpenApiDocument
  /** Why the document could not be fetched (it is then missing from the result). */
  error?: string
}

export interface MergeOptions {
  /** The gateway's own routes (not behind the API key). */
  gateway: OpenApiDocument
  downstreams: readonly DownstreamPart[]
  /** The header (and query parameter) that carries the API key. */
  apiKeyName: string
  info: { title: string; version: string; description: string }
}

export const SECURITY_SCHEMES = { header: 'ApiKeyHeader', query: 'ApiKeyQuery' } as const
/** Component (schema) of the gateway's own error envelope. */
const ENVELOPE = 'GatewayErrorEnvelope'
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const
/** What @fastify/swagger writes for a response schema without a description. */
const DEFAULT_DESCRIPTION = 'Default Response'
const REASONS: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const underPrefix = (path: string, prefixes: readonly string[]) =>
  prefixes.some((prefix) => path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`))

/** A component name as OpenAPI allows it (`^[a-zA-Z0-9._-]+$`). */
const componentName = (value: string) => value.replace(/[^a-zA-Z0-9._-]/g, '_')

/** Every `$ref` in `value`, rewritten by `rewrite` (which answers undefined to keep one). */
function rewriteRefs(value: unknown, rewrite: (ref: string) => string | undefined): unknown {
  if (Array.isArray(value)) return value.map((item) => rewriteRefs(item, rewrite))
  if (!isObject(value)) return value
  const out: Json = {}
  for (const [key, item] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof item === 'string' ? (rewrite(item) ?? item) : rewriteRefs(item, rewrite)
  }
  return out
}

/** `#/components/<kind>/<name>` → the merged name, by the renames of one document. */
function refRewriter(renames: Map<string, Map<string, string>>) {
  return (ref: string) => {
    const match = /^#\/components\/([^/]+)\/(.+)$/.exec(ref)
    if (!match) return undefined
    const [, kind = '', name = ''] = match
    const to = renames.get(kind)?.get(name)
    return to === undefined ? undefined : `#/components/${kind}/${to}`
  }
}

/** The name a component would like: a hoisted `def-N` schema goes by its title (e.g. Message). */
function preferredName(kind: string, name: string, component: unknown): string {
  if (kind === 'schemas' && /^def-\d+$/.test(name) && isObject(component) && typeof component.title === 'string') {
    const title = componentName(component.title)
    if (title !== '') return title
  }
  return name
}

/**
 * Where each component of `document` goes in `merged`: its preferred name if free or
 * holding an identical component (then shared), else `<service>.<name>` (made unique).
 */
function planRenames(merged: OpenApiDocument, document: OpenApiDocument, service: string) {
  const renames = new Map<string, Map<string, string>>()
  const shared = new Map<string, Set<string>>()
  for (const [kind, components] of Object.entries(document.components ?? {})) {
    if (kind === 'securitySchemes' || !isObject(components)) continue
    const existing = merged.components?.[kind] ?? {}
    const taken = new Set(Object.keys(existing))
    const names = new Map<string, string>()
    const reuse = new Set<string>()
    for (const [name, component] of Object.entries(components)) {
      let target = preferredName(kind, name, component)
      const mine = new Set(names.values())
      // two of this document's components want the same name: the later one keeps its own
      if (mine.has(target)) target = mine.has(name) ? unique(`${componentName(service)}.${name}`, taken) : name
      if (target in existing) reuse.add(name)
      else if (taken.has(target)) target = unique(`${componentName(service)}.${target}`, taken)
      taken.add(target)
      names.set(name, target)
    }
    renames.set(kind, names)
    shared.set(kind, reuse)
  }
  // A component is shared only if it is identical once its own refs are rewritten; else it gets its own name.
  for (let changed = true; changed; ) {
    changed = false
    const rewrite = refRewriter(renames)
    for (const [kind, reuse] of shared) {
      const names = renames.get(kind) ?? new Map<string, string>()
      const existing = merged.components?.[kind] ?? {}
      const taken = new Set([...Object.keys(existing), ...names.values()])
      for (const name of reuse) {
        const target = names.get(name) ?? name
        const mine = rewriteRefs(document.components?.[kind]?.[name], rewrite)
        if (isDeepStrictEqual(existing[target], mine)) continue
        names.set(name, unique(`${componentName(service)}.${target}`, taken))
        reuse.delete(name)
        changed = true
      }
    }
  }
  return { renames, shared }
}

function unique(name: string, taken: Set<string>): string {
  let candidate = name
  for (let n = 2; taken.has(candidate); n++) candidate = `${name}_${n}`
  return candidate
}

/** The gateway's own failures, on every proxied operation. */
function gatewayResponses(service: string, apiKeyName: string): Record<string, Json> {
  const envelope = (description: string) => ({
    description,
    content: { 'application/json': { schema: { $ref: `#/components/schemas/${ENVELOPE}` } } },
  })
  return {
    401: envelope(`No API key: send the \`${apiKeyName}\` header (or the \`?${apiKeyName}=\` query parameter)`),
    403: envelope('Unknown API key'),
    502: envelope(`The ${service} failed`),
    503: envelope(`The ${service} is unavailable`),
    504: envelope(`The ${service} timed out`),
  }
}

/** The responses, each described at least by its status's reason phrase (not "Default Response"). */
function withReasons(value: unknown): Record<string, unknown> {
  const responses: Record<string, unknown> = isObject(value) ? { ...value } : {}
  for (const [status, response] of Object.entries(responses)) {
    if (isObject(response) && response.description === DEFAULT_DESCRIPTION && REASONS[status]) {
      responses[status] = { ...response, description: REASONS[status] }
    }
  }
  return responses
}

/** One proxied operation, as the gateway's callers see it. */
function publicOperation(operation: Json, service: string, apiKeyName: string): Json {
  const responses = withReasons(operation.responses)
  const gateway = gatewayResponses(service, apiKeyName)
  // 401 and 403 are the gateway's (the services' own 401 is about the internal token, never seen here).
  responses['401'] = gateway[401]
  responses['403'] = gateway[403]
  for (const status of ['502', '503', '504']) responses[status] ??= gateway[status]
  return {
    ...operation,
    security: [{ [SECURITY_SCHEMES.header]: [] }, { [SECURITY_SCHEMES.query]: [] }],
    responses,
  }
}

function describe(base: string, parts: readonly DownstreamPart[]): string {
  const missing = parts.filter((part) => !part.document)
  const lines = [base]
  if (missing.length > 0) {
    lines.push(
      '',
      `**Incomplete document:** ${missing
        .map(
          (part) =>
            `the ${part.name}'s routes (${part.prefixes.join(', ')}) are missing (${part.error ?? 'no document'})`,
        )
        .join('; ')}. Reload in a moment.`,
    )
  }
  return lines.join('\n')
}

/** The one public document: the gateway's own paths, then each downstream's, merged. */
export function mergeOpenApi(opts: MergeOptions): OpenApiDocument {
  const gateway = structuredClone(opts.gateway)
  const missing = opts.downstreams.filter((part) => !part.document)
  const paths: Record<string, Json> = {}
  for (const [path, item] of Object.entries(gateway.paths ?? {})) {
    paths[path] = Object.fromEntries(
      Object.entries(item).map(([key, op]) => [
        key,
        (METHODS as readonly string[]).includes(key) && isObject(op)
          ? { ...op, responses: withReasons(op.responses) }
          : op,
      ]),
    )
  }
  const tags = [...(gateway.tags ?? [])]
  const components: Record<string, Record<string, unknown>> = {
    ...(gateway.components as Record<string, Record<string, unknown>>),
    schemas: {
      ...gateway.components?.schemas,
      [ENVELOPE]: {
        type: 'object',
        required: ['detail', 'code'],
        properties: {
          detail: { type: 'string' },
          code: { type: 'string', description: 'e.g. GATEWAY_MISSING_API_KEY' },
        },
      },
    },
    securitySchemes: {
      ...gateway.components?.securitySchemes,
      [SECURITY_SCHEMES.header]: { type: 'apiKey', in: 'header', name: opts.apiKeyName, description: 'An API key' },
      [SECURITY_SCHEMES.query]: {
        type: 'apiKey',
        in: 'query',
        name: opts.apiKeyName,
        description: `The same key as the \`?${opts.apiKeyName}=\` query parameter (for clients that cannot set headers)`,
      },
    },
  }
  const merged: OpenApiDocument = {
    ...gateway,
    info: { ...gateway.info, ...opts.info, description: describe(opts.info.description, opts.downstreams) },
    servers: [{ url: '/', description: 'This gateway' }],
    paths,
    components,
    tags,
  }
  if (missing.length > 0) {
    merged['x-missing-documents'] = missing.map((part) => ({ service: part.name, error: part.error ?? 'no document' }))
  }

  for (const part of opts.downstreams) {
    if (!part.document) continue
    const document = part.document
    const { renames, shared } = planRenames(merged, document, part.name)
    const rewrite = refRewriter(renames)
    for (const [kind, names] of renames) {
      const target = components[kind] ?? {}
      components[kind] = target
      for (const [name, to] of names) {
        if (shared.get(kind)?.has(name)) continue
        target[to] = rewriteRefs(document.components?.[kind]?.[name], rewrite)
      }
    }
    for (const [path, item] of Object.entries(document.paths ?? {})) {
      if (!underPrefix(path, part.prefixes) || !isObject(item)) continue
      const out: Json = { ...paths[path] }
      for (const [key, value] of Object.entries(rewriteRefs(item, rewrite) as Json)) {
        if (key in out) continue // the first (the gateway's own, or an earlier service's) wins
        out[key] =
          (METHODS as readonly string[]).includes(key) && isObject(value)
            ? publicOperation(value, part.name, opts.apiKeyName)
            : value
      }
      paths[path] = out
    }
    for (const tag of document.tags ?? []) if (!tags.some((t) => t.name === tag.name)) tags.push(tag)
  }
  return merged
}
