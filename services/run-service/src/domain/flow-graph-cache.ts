import { BatchedCalls, isUnavailableError, type Queryable } from '@session-runtime/db'
import { type ComponentRegistry, type FlowGraph, parseFlow, runnableGraph } from '../engine/index.js'
import {
  FlowNotFoundError,
  type FlowRef,
  findFlowVersion,
  findFlowVersions,
  getVersionedFlow,
} from './flow-repository.js'

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

/** How many flow-version statements run at once; lookups that arrive meanwhile go together in the next. */
const LOOKUPS_IN_FLIGHT = 2
/** Most lookups one statement carries. */
const LOOKUP_BATCH = 256

/**
 * The run's lookup (spec §3): the tenant's flow by ID or endpoint name (FlowNotFoundError otherwise), as a
 * runnable graph of `registry`'s components (FlowInvalidError if it cannot run). One small query when the
 * cache holds the current version, and under load one query for the lookups of many runs (BatchedCalls: the
 * lookups of one event-loop turn and those arriving while two statements run go together, as the per-session
 * rule's takes); the tenant check is always made by the database. Fresh: a lookup is sent
 * after its run arrived, so it sees every update acknowledged before.
 */
export class RunnableFlows {
  readonly #versions: BatchedCalls<FlowRef, { id: string; version: string } | undefined>

  constructor(
    private readonly db: Queryable,
    private readonly registry: ComponentRegistry,
    private readonly cache: FlowGraphCache,
  ) {
    this.#versions = new BatchedCalls((refs) => findFlowVersions(db, refs), {
      maxInFlight: LOOKUPS_IN_FLIGHT,
      maxBatch: LOOKUP_BATCH,
      retryAlone: (err) => !isUnavailableError(err),
      gatherTurn: true,
      one: (ref) => findFlowVersion(db, ref),
    })
  }

  async load(tenant: string, idOrEndpointName: string): Promise<{ id: string; graph: FlowGraph }> {
    const found = await this.#versions.call({ tenant, idOrEndpointName })
    if (!found) throw new FlowNotFoundError(idOrEndpointName)
    const { id, version } = found
    const cached = this.cache.get(id, version)
    if (cached) return { id, graph: cached }
    const flow = await getVersionedFlow(this.db, tenant, id)
    const graph = runnableGraph(parseFlow(flow, this.registry))
    this.cache.set(id, flow.version, graph)
    return { id, graph }
  }
}
