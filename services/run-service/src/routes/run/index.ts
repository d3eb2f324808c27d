import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorEnvelope } from '@session-runtime/schemas'
import { Type } from '@sinclair/typebox'
import { FlowGraphCache, RunnableFlows } from '../../domain/flow-graph-cache.js'
import {
  buildRunResponse,
  type ComponentRegistry,
  type ModelDefaults,
  type ModelPort,
  planRun,
  RunRequest,
  RunResponse,
} from '../../engine/index.js'
import { runFailure } from '../../errors.js'
import { ValidationEnvelope } from '../../schemas/flows.js'
import { cancelledByClient } from './cancellation.js'
import { acceptEmptyJsonBody, emptyBodyAsObject } from './empty-body.js'
import { openEventStream } from './event-stream.js'
import { answerRunFailure, runExecution, takeSessionTurn } from './execution.js'
import { checkInputLimits, type RunInputLimits } from './input-limits.js'
import { responses } from './responses.js'
import { runLog } from './run-log.js'
import { countRuns } from './run-metrics.js'

export interface RunRoutesOptions extends RunInputLimits {
  bodyLimit: number
  /** How many parsed flows to keep (FlowGraphCache); 0: none. */
  flowCacheSize: number
  /** The component types a flow may use. */
  registry: ComponentRegistry
  model: ModelPort
  modelDefaults: ModelDefaults
}

export const runErrors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  409: ErrorEnvelope,
  413: ErrorEnvelope,
  415: ErrorEnvelope,
  422: ValidationEnvelope,
  500: ErrorEnvelope,
  502: ErrorEnvelope,
  503: ErrorEnvelope,
}

const RunParams = Type.Object({ flow_id_or_endpoint_name: Type.String({ minLength: 1 }) })
const RunQuery = Type.Object({ stream: Type.Boolean({ default: false }) })

/**
 * `POST /api/v1/run/{flow_id_or_endpoint_name}` (spec §3), reached through the gateway, which names the
 * tenant. Everything that can fail before the flow starts (404, 413, 422, 400) is an ordinary JSON
 * error; with `?stream=true` the run then streams `add_message` / `token` events and ends with exactly one
 * `end` or `error` event. A client that goes away cancels the run. `POST /api/v1/responses` (./responses.ts)
 * runs flows the same way.
 */
const run: FastifyPluginAsyncTypebox<RunRoutesOptions> = async (app, opts) => {
  app.addHook('onRequest', app.requireInternalCaller)
  const flows = new RunnableFlows(app.db, opts.registry, new FlowGraphCache(opts.flowCacheSize))
  app.addHook('onRequest', app.seedExampleFlows)
  const streamedRuns = countRuns(app)
  acceptEmptyJsonBody(app)

  app.post(
    '/api/v1/run/:flow_id_or_endpoint_name',
    {
      bodyLimit: opts.bodyLimit,
      preValidation: emptyBodyAsObject,
      schema: {
        summary: 'Run a flow',
        description:
          "Langflow-compatible run. `?stream=true` answers `text/event-stream` in Langflow's wire format: one JSON " +
          'object `{"event", "data"}` per line followed by a blank line; `add_message`, `token`, then `end` ' +
          '(`data.result` = the non-streamed body) or `error`. Runs on one session take turns (`multitask_strategy`: ' +
          '`enqueue`, the default, waits for the earlier ones; `reject` answers 409 `RUNSVC_SESSION_BUSY` while ' +
          'another is in flight, storing nothing).',
        params: RunParams,
        querystring: RunQuery,
        body: RunRequest,
        response: { 200: RunResponse, ...runErrors },
      },
    },
    async (request, reply) => {
      // validate
      checkInputLimits(request.body, opts)
      // plan
      const { tenant } = request
      const flow = await flows.load(tenant, request.params.flow_id_or_endpoint_name)
      const plan = planRun(flow.graph, flow.id, request.body)
      const log = runLog(request, reply, flow.id, plan.requestSessionId)
      // wait for the session's turn (a JSON 409 with `reject` if it is not free), then execute
      const signal = cancelledByClient(reply)
      const release = await takeSessionTurn(app, tenant, plan, signal)
      const execute = runExecution(app, opts, request, reply, {
        plan,
        stream: request.query.stream,
        sessionMetadata: request.body.session_metadata,
        signal,
      })

      // answer: JSON…
      // the session is released before the answer: a client's next run on it finds it free
      if (!request.query.stream) {
        try {
          const outcome = await execute()
          await release()
          return log.completed(buildRunResponse(plan, outcome))
        } catch (error) {
          await release()
          return answerRunFailure(reply, log, error, 'run failed')
        }
      }

      // …or a stream, whose last event is `end` or `error`
      streamedRuns.started(request)
      const stream = openEventStream(reply)
      let status = 200
      try {
        const outcome = await execute((event) => stream.write(event))
        await release()
        stream.write({ event: 'end', data: { result: log.completed(buildRunResponse(plan, outcome)) } })
      } catch (error) {
        await release()
        const failed = runFailure(error)
        status = failed?.statusCode ?? 500
        if (status >= 500) log.failed(error, 'streamed run failed')
        stream.write({ event: 'error', data: { error: failed?.message ?? 'Internal server error' } })
      } finally {
        streamedRuns.ended(reply, status)
        stream.end()
      }
    },
  )

  // Langflow's OpenAI-compatible endpoint: the same runs, in this scope (its hooks, cache and metrics)
  await app.register(responses, { ...opts, flows, streamedRuns })
}

export default run
