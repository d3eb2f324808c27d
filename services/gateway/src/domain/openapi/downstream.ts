import type { DownstreamPart, OpenApiDocument } from './merge.js'

export interface DocumentSource {
  name: string
  /** The downstream's instances' base URLs: the document is fetched from the first that answers. */
  urls: readonly string[]
  /** The public prefixes the gateway forwards to it. */
  prefixes: readonly string[]
}

export interface DocumentCacheOptions {
  sources: readonly DocumentSource[]
  /** Path of each downstream's document (internal: needs the token). */
  path: string
  tokenHeader: string
  internalToken: string
  /** Per fetch. */
  timeoutMs: number
  /** A fetched document is used this long, then fetched again. */
  ttlMs: number
  now?: () => number
}

interface Entry {
  document?: OpenApiDocument
  fetchedAt?: number
  error?: string
  inFlight?: Promise<void>
}

function asDocument(value: unknown): OpenApiDocument {
  const doc = value as Partial<OpenApiDocument> | null
  if (
    typeof doc !== 'object' ||
    doc === null ||
    typeof doc.openapi !== 'string' ||
    !doc.openapi.startsWith('3.') ||
    typeof doc.paths !== 'object'
  ) {
    throw new Error('the answer is not an OpenAPI 3 document')
  }
  return doc as OpenApiDocument
}

/**
 * The downstreams' OpenAPI documents, fetched with the internal token and kept for
 * `ttlMs`. A document missing or older than that is fetched again on `refresh()`; a
 * failed fetch keeps the last good document (if any) and records why.
 */
export function createDocumentCache(opts: DocumentCacheOptions) {
  const now = opts.now ?? Date.now
  const entries = new Map<string, Entry>(opts.sources.map((source) => [source.name, {}]))

  async function fetchOne(source: DocumentSource, entry: Entry) {
    for (const url of source.urls) {
      await fetchFrom(url, entry)
      if (entry.error === undefined) return
    }
  }

  async function fetchFrom(url: string, entry: Entry) {
    try {
      const res = await fetch(new URL(opts.path, url), {
        headers: { [opts.tokenHeader]: opts.internalToken, accept: 'application/json' },
        signal: AbortSignal.timeout(opts.timeoutMs),
      })
      if (!res.ok) {
        await res.body?.cancel()
        throw new Error(`HTTP ${res.status}`)
      }
      entry.document = asDocument(await res.json())
      entry.fetchedAt = now()
      entry.error = undefined
    } catch (error) {
      // fetch's own message is "fetch failed": the cause says why (ECONNREFUSED, …)
      const cause = (error as { cause?: { code?: string; message?: string } }).cause
      entry.error = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error))
    }
  }

  return {
    /** Fetches every document that is missing or stale (at most one fetch per downstream at a time). */
    async refresh(): Promise<void> {
      await Promise.all(
        opts.sources.map((source) => {
          const entry = entries.get(source.name) as Entry
          const fresh =
            entry.fetchedAt !== undefined && now() - entry.fetchedAt < opts.ttlMs && entry.error === undefined
          if (fresh) return undefined
          entry.inFlight ??= fetchOne(source, entry).finally(() => {
            entry.inFlight = undefined
          })
          return entry.inFlight
        }),
      )
    },
    /** What is known now: each downstream's document, or why there is none. */
    parts(): DownstreamPart[] {
      return opts.sources.map((source) => {
        const entry = entries.get(source.name) as Entry
        return {
          name: source.name,
          prefixes: source.prefixes,
          document: entry.document,
          error: entry.document ? undefined : (entry.error ?? 'not fetched yet'),
        }
      })
    },
  }
}

export type DocumentCache = ReturnType<typeof createDocumentCache>
