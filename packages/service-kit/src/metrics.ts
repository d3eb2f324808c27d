import { constants, PerformanceObserver } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import type { FastifyInstance, onRequestHookHandler, RouteOptions } from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import fp from 'fastify-plugin'
import promClient, { Registry } from 'prom-client'

/** The metric types, for services (which do not depend on prom-client themselves). */
export { Counter, Gauge, Histogram } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's own Prometheus registry (served at /metrics): register the service's metrics in it. */
    metricsRegistry: Registry
  }
}

export interface MetricsOptions {
  /** The service's name, set as the `service` label of every metric. */
  service: string
  /** Buckets of the route latency histogram, in seconds. */
  buckets?: number[]
  /** Runs before `/metrics` answers, e.g. to require a scraper's token; default: none (open). */
  onRequest?: onRequestHookHandler
}

/** Route latency buckets (seconds): fast reads up to long model runs. */
export const DEFAULT_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

const HEAP_AFTER_MAJOR_GC = 'nodejs_heap_used_after_major_gc_bytes'

/**
 * Prometheus metrics at `GET /metrics` (text format, no key: for scrapers on the
 * internal network). Each app has its own registry, never prom-client's global
 * one, so several apps can live in one process (tests). Collected:
 *
 * - `http_request_duration_seconds{method, route, status_code}`: every request,
 *   by route pattern (never the raw URL); requests no route matched are `route="__unmatched__"`;
 *   /metrics itself is not counted;
 * - Node's default metrics (`process_*`, `nodejs_*`);
 * - `nodejs_heap_used_after_major_gc_bytes`: the V8 heap used right after the last major (mark-sweep-compact)
 *   GC, i.e. what the process retains, without the garbage of the moment (`nodejs_heap_size_used_bytes`
 *   swings widely between collections). Read when this app's `gc` PerformanceObserver is called (the next
 *   turns of the event loop after the collection). No sample (the metric is absent) until the first major GC
 *   after the app started: a 0 would read as an empty heap;
 * - every metric carries `service="<name>"`.
 */
async function metrics(app: FastifyInstance, opts: MetricsOptions) {
  const registry = new Registry()
  registry.setDefaultLabels({ service: opts.service })
  app.decorate('metricsRegistry', registry)

  const heapAfterMajorGc = new promClient.Gauge({
    name: HEAP_AFTER_MAJOR_GC,
    help: 'V8 heap used right after the last major (mark-sweep-compact) garbage collection',
    registers: [], // registered at the first major GC, so that it has no sample before
  })
  const gcObserver = new PerformanceObserver((list) => {
    // `detail` (Node ≥ 16: { kind, flags }) is missing from @types/node 20's PerformanceEntry
    const major = list
      .getEntries()
      .some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
    if (!major) return
    heapAfterMajorGc.set(getHeapStatistics().used_heap_size)
    if (!registry.getSingleMetric(HEAP_AFTER_MAJOR_GC)) registry.registerMetric(heapAfterMajorGc)
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  app.addHook('onClose', async () => {
    gcObserver.disconnect()
    registry.clear()
  })

  // fastify-metrics serves `client.register` (merged with the registries given below): handing it a
  // client whose `register` is this registry makes it serve this registry alone, default labels kept.
  const client = { ...promClient, register: registry } as typeof promClient
  const endpoint = {
    method: 'GET',
    url: '/metrics',
    logLevel: 'warn',
    exposeHeadRoute: false,
    config: { disableMetrics: true },
    ...(opts.onRequest ? { onRequest: opts.onRequest } : {}),
    schema: {
      hide: true,
      summary: 'Prometheus metrics (text format)',
      response: { 200: { type: 'string' } },
    },
    // replaced by fastify-metrics
    handler: async () => '',
  } as RouteOptions
  await app.register(fastifyMetrics.default, {
    promClient: client,
    endpoint,
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      registeredRoutesOnly: false,
      invalidRouteGroup: '__unmatched__',
      overrides: {
        histogram: {
          name: 'http_request_duration_seconds',
          help: 'HTTP request duration in seconds, by method, route pattern and status code',
          buckets: opts.buckets ?? DEFAULT_LATENCY_BUCKETS,
          registers: [registry],
        },
        // disabled, but created anyway by fastify-metrics: kept out of the global registry, then dropped
        summary: { name: 'http_request_summary_seconds', registers: [registry] },
      },
    },
  })
  registry.removeSingleMetric('http_request_summary_seconds')
}

export default fp(metrics, { name: 'metrics' })
