import type { Queryable } from '@session-runtime/db'
import { type ComponentRegistry, type FlowGraph, parseFlow, runnableGraph } from '../engine/index.js'
import { findFlowVersion, getVersionedFlow } from './flow-repository.js'

/**
 * Runnable graphs of stored flows, by flow ID and row version, least recently used out first.
 * A stored flow is tens of kilobytes of JSON: fetching and parsing it was the largest part of a
 * run's own cost. The version is Postgres's `xmin` of the row, which every update changes, so an
 * updated flow is never served from here; graphs are immutable (readonly all the way down).
 */
export class FlowGraphCache {
  readonly #entries = new Map<string, { version: string; graph: FlowGraph }>()

  /** `maxEntries` 0 keeps nothing. */
  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.#entries.size
  }

  get(id: string, version: string): FlowGraph | undefined {
    const entry = this.#entries.get(id)
    if (!entry || entry.version !== version) return undefined
    this.#entries.delete(id)
    this.#entries.set(id, entry)
    return entry.graph
  }

  set(id: string, version: string, graph: FlowGraph): void {
    if (this.maxEntries === 0) return
    this.#entries.delete(id)
    this.#entries.set(id, { version, graph })
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#entries.delete(oldest)
    }
  }
}

/**
 * The run's lookup (spec §3): the tenant's flow by ID or endpoint name (FlowNotFoundError
 * otherwise), as a runnable graph of `registry`'s components (FlowInvalidError if it cannot run).
 * One small query when the cache holds the current version; the tenant check is always made by the
 * database.
 */
export async function loadRunnableFlow(
  db: Queryable,
  cache: FlowGraphCache,
  registry: ComponentRegistry,
  tenant: string,
  idOrEndpointName: string,
): Promise<{ id: string; graph: FlowGraph }> {
  const { id, version } = await findFlowVersion(db, tenant, idOrEndpointName)
  const cached = cache.get(id, version)
  if (cached) return { id, graph: cached }
  const flow = await getVersionedFlow(db, tenant, id)
  const graph = runnableGraph(parseFlow(flow, registry))
  cache.set(id, flow.version, graph)
  return { id, graph }
}
