import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export interface StreamedRuns {
  /** This request answers with a stream: it is counted when the stream ends, not when answered. */
  started(request: FastifyRequest): void
  /** The stream ended; `status` is its `error` event's (200 when it ended with `end`). */
  ended(reply: FastifyReply, status: number): void
}

/**
 * Counts the runs of the routes in `app`'s scope (`runs_total`, `run_duration_seconds`: plugins/app/metrics.ts):
 * a streamed run when its stream ends, any other run request when answered. Requests refused by the
 * internal-caller check (no tenant) are not runs.
 */
export function countRuns(app: FastifyInstance): StreamedRuns {
  const streamed = new WeakSet<FastifyRequest>()
  app.addHook('onResponse', async (request, reply) => {
    if (!request.tenant || streamed.has(request)) return
    const stream = (request.query as { stream?: unknown } | undefined)?.stream === true
    app.runMetrics.finished({ stream, status: reply.statusCode, seconds: reply.elapsedTime / 1000 })
  })
  return {
    started(request) {
      streamed.add(request)
    },
    ended(reply, status) {
      app.runMetrics.finished({ stream: true, status, seconds: reply.elapsedTime / 1000 })
    },
  }
}
