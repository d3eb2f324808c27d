import { Counter, DEFAULT_LATENCY_BUCKETS, Histogram, metrics } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { TokenUsage } from '../../engine/index.js'

/** How a run request ended: answered (or streamed to `end`), refused or cancelled (4xx), failed (5xx). */
export type RunOutcome = 'ok' | 'client_error' | 'error'

export interface FinishedRun {
  /** `?stream=true`. */
  stream: boolean
  /** The answer's status; for a stream, the status of its `error` event (200 when it ended with `end`). */
  status: number
  seconds: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts the runs: call once per run request, when it is answered. */
    runMetrics: { finished(run: FinishedRun): void }
    /** Counts the tokens a model call used (the provider's usage), by tenant and flow. */
    tokenMetrics: { used(tenant: string, flowId: string, usage: TokenUsage): void }
  }
}

export function outcomeOf(status: number): RunOutcome {
  if (status < 400) return 'ok'
  return status < 500 ? 'client_error' : 'error'
}

/**
 * `/metrics` (route latency, Node's metrics; see service-kit) and the runs:
 * `runs_total{outcome, mode}` and `run_duration_seconds{outcome, mode}`, mode `stream` or `sync`; the tokens
 * the model providers report, `model_tokens_total{tenant, flow_id, kind}`, kind `input` or `output`.
 */
async function runServiceMetrics(app: FastifyInstance) {
  await app.register(metrics, { service: 'run-service' })
  const registers = [app.metricsRegistry]
  const labelNames = ['outcome', 'mode'] as const
  const runs = new Counter({
    name: 'runs_total',
    help: 'Run requests answered, by outcome and mode',
    labelNames,
    registers,
  })
  const duration = new Histogram({
    name: 'run_duration_seconds',
    help: 'Run duration in seconds (a stream: until its last event), by outcome and mode',
    labelNames,
    buckets: DEFAULT_LATENCY_BUCKETS,
    registers,
  })
  // every series from the start, so that rate() sees the first run
  for (const outcome of ['ok', 'client_error', 'error'] as const) {
    for (const mode of ['stream', 'sync'] as const) runs.inc({ outcome, mode }, 0)
  }
  const tokens = new Counter({
    name: 'model_tokens_total',
    help: 'Tokens used by model calls as their providers report them, by tenant, flow and kind (input, output)',
    labelNames: ['tenant', 'flow_id', 'kind'] as const,
    registers,
  })
  app.decorate('tokenMetrics', {
    used(tenant: string, flowId: string, usage: TokenUsage) {
      tokens.inc({ tenant, flow_id: flowId, kind: 'input' }, usage.input_tokens)
      tokens.inc({ tenant, flow_id: flowId, kind: 'output' }, usage.output_tokens)
    },
  })
  app.decorate('runMetrics', {
    finished({ stream, status, seconds }: FinishedRun) {
      const labels = { outcome: outcomeOf(status), mode: stream ? 'stream' : 'sync' }
      runs.inc(labels)
      duration.observe(labels, seconds)
    },
  })
}

export default fp(runServiceMetrics, { name: 'run-service-metrics' })
