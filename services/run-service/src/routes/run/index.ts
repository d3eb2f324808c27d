import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { MessageStoreError, MessageStoreUnavailableError } from '@session-runtime/clients'
import { ErrorEnvelope } from '@session-runtime/schemas'
import { exceedsJsonLimits } from '@session-runtime/service-kit'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FlowGraphCache, loadRunnableFlow } from '../../domain/flow-graph-cache.js'
import {
  buildRunResponse,
  ComponentFailedError,
  executeRun,
  type ModelDefaults,
  type ModelPort,
  ModelProviderError,
  planRun,
  RunAbortedError,
  type RunEvent,
  RunRequest,
  RunResponse,
} from '../../engine/index.js'
import { Errors } from '../../errors.js'
import { messageStorePort } from '../../ports/message-store.js'
import { ValidationEnvelope } from '../../schemas/flows.js'

export interface RunRoutesOptions {
  bodyLimit: number
  inputMaxChars: number
  /** Deepest nesting and most entries (keys and items, at every level) of `tweaks`; 422 beyond either. */
  tweaksMaxDepth: number
  tweaksMaxKeys: number
  /** How many parsed flows to keep (FlowGraphCache); 0: none. */
  flowCacheSize: number
  model: ModelPort
  modelDefaults: ModelDefaults
}

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  413: ErrorEnvelope,
  415: ErrorEnvelope,
  422: ValidationEnvelope,
  500: ErrorEnvelope,
  502: ErrorEnvelope,
  503: ErrorEnvelope,
}

const RunParams = Type.Object({ flow_id_or_endpoint_name: Type.String({ minLength: 1 }) })
const RunQuery = Type.Object({ stream: Type.Boolean({ default: false }) })

/** How a run that started and then failed is answered: status, envelope (JSON) or `error` event (stream). */
function failure(error: unknown): { status: number; detail: string; code: string } | undefined {
  let mapped: { statusCode?: number; message: string; code: string } | undefined
  if (error instanceof RunAbortedError) mapped = new Errors.RunCancelled()
  else if (error instanceof ComponentFailedError) {
    const cause = error.cause
    const where = `component "${error.component.displayName}" (${error.component.nodeId})`
    if (cause instanceof MessageStoreUnavailableError) {
      mapped = new Errors.MessageStoreUnavailable(
        `The message-store is unavailable, so the run stopped at ${where}; try again shortly (${cause.message})`,
      )
    } else if (cause instanceof MessageStoreError) {
      mapped = new Errors.MessageStoreFailed(`${cause.statusCode} ${cause.code} at ${where}`)
    } else if (error.providerFailed) mapped = new Errors.ModelProviderFailed(error.message)
    else mapped = new Errors.ComponentFailed(error.message)
  }
  if (!mapped) return undefined
  return { status: mapped.statusCode ?? 500, detail: mapped.message, code: mapped.code }
}

/**
 * What a failed run logs. Message text never goes to the logs, and a failed component's error carries the
 * stored error message, and its cause's words may quote the input (a model provider's error often echoes the
 * prompt): of those, only names, codes, the provider's HTTP status and the stack frames are kept.
 */
function loggedFailure(error: unknown): Record<string, unknown> {
  if (!(error instanceof ComponentFailedError)) return { err: error }
  const cause = error.cause
  const provider =
    cause instanceof ModelProviderError
      ? (cause.cause as { status?: unknown; code?: unknown; type?: unknown } | undefined)
      : undefined
  return {
    code: error.code,
    component: error.component,
    cause: cause instanceof Error ? cause.name : typeof cause,
    ...(cause instanceof ModelProviderError
      ? { provider: { timeout: cause.timeout, status: provider?.status, code: provider?.code, type: provider?.type } }
      : {}),
    stack: cause instanceof Error ? cause.stack?.replace(`${cause.name}: ${cause.message}`, cause.name) : undefined,
  }
}

/** Code points, counted only when the UTF-16 length could exceed the limit. */
function tooLong(value: string, max: number): boolean {
  if (value.length <= max) return false
  let count = 0
  for (const _ of value) if (++count > max) return true
  return false
}

/** Adds fields to every later log line of this request, the reply's ("request completed") included. */
function bindLog(request: FastifyRequest, reply: FastifyReply, bindings: Record<string, string>): void {
  request.log = request.log.child(bindings)
  reply.log = request.log
}

/** One event of Langflow's streaming wire format: a JSON object on its own line, then a blank line. */
function writeEvent(reply: FastifyReply, event: RunEvent | { event: 'end' | 'error'; data: unknown }): void {
  if (!reply.raw.writableEnded && !reply.raw.destroyed) reply.raw.write(`${JSON.stringify(event)}\n\n`)
}

/**
 * `POST /api/v1/run/{flow_id_or_endpoint_name}` (spec §3), reached through the gateway, which names the
 * tenant. Everything that can fail before the flow starts (404, 413, 422, 400) is an ordinary JSON
 * error; with `?stream=true` the run then streams `add_message` / `token` events and ends with exactly one
 * `end` or `error` event. A client that goes away cancels the run.
 */
const run: FastifyPluginAsyncTypebox<RunRoutesOptions> = async (app, opts) => {
  app.addHook('onRequest', app.requireInternalCaller)
  const flowGraphs = new FlowGraphCache(opts.flowCacheSize)
  app.addHook('onRequest', app.seedExampleFlows)
  // runs_total: a streamed run is counted when its stream ends (below), any other run request when answered
  const streamed = new WeakSet<FastifyRequest>()
  app.addHook('onResponse', async (request, reply) => {
    if (!request.tenant || streamed.has(request)) return
    const stream = (request.query as { stream?: unknown } | undefined)?.stream === true
    app.runMetrics.finished({ stream, status: reply.statusCode, seconds: reply.elapsedTime / 1000 })
  })

  // A missing or empty body is `{}` (spec §3); anything else goes through Fastify's own (safe) JSON parser.
  const defaultJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') return done(null, {})
    return defaultJson(request, body as string, done)
  })

  app.post(
    '/api/v1/run/:flow_id_or_endpoint_name',
    {
      bodyLimit: opts.bodyLimit,
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {}
      },
      schema: {
        summary: 'Run a flow',
        description:
          "Langflow-compatible run. `?stream=true` answers `text/event-stream` in Langflow's wire format: one JSON " +
          'object `{"event", "data"}` per line followed by a blank line; `add_message`, `token`, then `end` ' +
          '(`data.result` = the non-streamed body) or `error`.',
        params: RunParams,
        querystring: RunQuery,
        body: RunRequest,
        response: { 200: RunResponse, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body
      if (typeof body.input_value === 'string' && tooLong(body.input_value, opts.inputMaxChars)) {
        throw new Errors.InputTooLarge(opts.inputMaxChars)
      }
      const tweaks = exceedsJsonLimits(body.tweaks, { maxDepth: opts.tweaksMaxDepth, maxEntries: opts.tweaksMaxKeys })
      if (tweaks === 'depth') throw new Errors.TweaksTooDeep(opts.tweaksMaxDepth)
      if (tweaks === 'entries') throw new Errors.TweaksTooManyKeys(opts.tweaksMaxKeys)
      const flow = await loadRunnableFlow(app.db, flowGraphs, request.tenant, request.params.flow_id_or_endpoint_name)
      const plan = planRun(flow.graph, flow.id, body)
      // Every line of this run names its flow and, as soon as it is known, its session (the request ID is there).
      bindLog(request, reply, {
        flowId: flow.id,
        ...(plan.requestSessionId ? { sessionId: plan.requestSessionId } : {}),
      })
      const started = performance.now()
      const completed = (response: RunResponse) => {
        if (!plan.requestSessionId) bindLog(request, reply, { sessionId: response.session_id })
        request.log.info({ durationMs: Math.round(performance.now() - started) }, 'run completed')
        return response
      }

      // The client going away (before the answer is complete) cancels the run.
      const cancel = new AbortController()
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) cancel.abort(new Error('the client closed the connection'))
      })
      const execute = (onEvent?: (event: RunEvent) => void) =>
        executeRun(plan, {
          messages: messageStorePort(app.messageStore, request.tenant, request.id, app.unconfirmedMessages),
          model: opts.model,
          modelDefaults: opts.modelDefaults,
          stream: request.query.stream,
          signal: cancel.signal,
          onEvent,
        })

      if (!request.query.stream) {
        try {
          return completed(buildRunResponse(plan, await execute()))
        } catch (error) {
          const failed = failure(error)
          if (!failed) throw error
          if (failed.status >= 500) request.log.error(loggedFailure(error), 'run failed')
          return reply.code(failed.status as 500).send({ detail: failed.detail, code: failed.code })
        }
      }

      reply.hijack()
      streamed.add(request)
      let status = 200
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      })
      try {
        const outcome = await execute((event) => writeEvent(reply, event))
        writeEvent(reply, { event: 'end', data: { result: completed(buildRunResponse(plan, outcome)) } })
      } catch (error) {
        const failed = failure(error)
        if (!failed || failed.status >= 500) request.log.error(loggedFailure(error), 'streamed run failed')
        status = failed?.status ?? 500
        writeEvent(reply, { event: 'error', data: { error: failed?.detail ?? 'Internal server error' } })
      } finally {
        app.runMetrics.finished({ stream: true, status, seconds: reply.elapsedTime / 1000 })
        reply.raw.end()
      }
    },
  )
}

export default run
