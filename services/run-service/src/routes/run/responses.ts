import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorEnvelope } from '@session-runtime/schemas'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RunnableFlows } from '../../domain/flow-graph-cache.js'
import {
  buildRunResponse,
  type ComponentRegistry,
  frameResponseEvent,
  hasChatInput,
  openAIError,
  outputMessage,
  outputTextOf,
  planRun,
  type ResponseEvent,
  ResponseEvents,
  ResponseObject,
  ResponsesRequest,
  type RunOutcome,
  responseObject,
  responseSessionId,
  responseUsage,
  runRequestOf,
  STREAM_DONE,
} from '../../engine/index.js'
import { Errors, runFailure } from '../../errors.js'
import { ValidationEnvelope } from '../../schemas/flows.js'
import { cancelledByClient } from './cancellation.js'
import { emptyBodyAsObject } from './empty-body.js'
import { openEventStream } from './event-stream.js'
import { answerRunFailure, type RunExecutionOptions, runExecution, takeSessionTurn } from './execution.js'
import { checkInputLimits, type RunInputLimits } from './input-limits.js'
import { runLog } from './run-log.js'
import type { StreamedRuns } from './run-metrics.js'

export interface ResponsesRouteOptions extends RunInputLimits, RunExecutionOptions {
  bodyLimit: number
  registry: ComponentRegistry
  flows: RunnableFlows
  streamedRuns: StreamedRuns
}

/** The error envelope with OpenAI's `error` object next to `detail` and `code` (added by `withOpenAIError`). */
const OpenAIErrorObject = Type.Object({
  message: Type.String(),
  type: Type.String(),
  param: Type.Null(),
  code: Type.String(),
})
const withError = <T extends typeof ErrorEnvelope | typeof ValidationEnvelope>(envelope: T) =>
  Type.Object({ ...envelope.properties, error: Type.Optional(OpenAIErrorObject) })
const OpenAIErrorEnvelope = withError(ErrorEnvelope)
const errors = {
  400: OpenAIErrorEnvelope,
  401: OpenAIErrorEnvelope,
  404: OpenAIErrorEnvelope,
  413: OpenAIErrorEnvelope,
  415: OpenAIErrorEnvelope,
  422: withError(ValidationEnvelope),
  500: OpenAIErrorEnvelope,
  502: OpenAIErrorEnvelope,
  503: OpenAIErrorEnvelope,
}

/**
 * preSerialization: every error answer of the route (the error handler's envelope included) also carries
 * OpenAI's `error` object, which OpenAI's SDKs read (`err.error.message`, `err.code`).
 */
async function withOpenAIError(_request: FastifyRequest, reply: FastifyReply, payload: unknown) {
  const body = payload as { detail?: unknown; code?: unknown } | null
  if (reply.statusCode < 400 || typeof body?.detail !== 'string' || typeof body.code !== 'string') return payload
  return { ...body, error: openAIError(reply.statusCode, body.detail, body.code) }
}

/**
 * `POST /api/v1/responses`: Langflow's OpenAI-compatible endpoint, registered in the run routes' scope (the
 * internal caller's tenant, the example flows, the run metrics). The flow named by `model` runs with `input` as
 * its chat input, in the session `previous_response_id` (which must be one of this tenant's flow's sessions),
 * or in a new one; the response's `id` is that session.
 */
export const responses: FastifyPluginAsyncTypebox<ResponsesRouteOptions> = async (app, opts) => {
  app.post(
    '/api/v1/responses',
    {
      bodyLimit: opts.bodyLimit,
      preValidation: emptyBodyAsObject,
      preSerialization: withOpenAIError,
      schema: {
        summary: 'Create a response (OpenAI-compatible)',
        description:
          "Langflow's OpenAI Responses endpoint: `model` is the flow's ID or endpoint name (the flow needs a Chat " +
          "Input), `input` its chat input. The response `id` is the run's session ID: passed back as " +
          "`previous_response_id`, it continues that conversation (404 when this tenant's flow has no such " +
          "session). `stream: true` answers OpenAI's streaming events (`text/event-stream`, `event:` and `data:` " +
          'lines): `response.created`, `response.in_progress`, `response.output_item.added`, ' +
          '`response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`, ' +
          '`response.content_part.done`, `response.output_item.done`, then `response.completed` or ' +
          "`response.failed`, and a last `data: [DONE]`. Errors carry OpenAI's `error` object next to `detail` " +
          'and `code`. `tools` is not supported (422).',
        body: ResponsesRequest,
        response: { 200: ResponseObject, ...errors },
      },
    },
    async (request, reply) => {
      const { body, tenant } = request
      // validate
      if (body.tools != null) throw new Errors.Validation('body/tools: tools are not supported')
      checkInputLimits({ input_value: body.input }, opts)
      // plan: the flow, then the session
      const flow = await opts.flows.load(tenant, body.model)
      if (!hasChatInput(flow.graph)) {
        throw new Errors.Validation(
          `Flow ${body.model} has no Chat Input component, which the Responses endpoint needs`,
        )
      }
      const previous = body.previous_response_id ?? null
      if (previous !== null) await requireSession(request, flow.id, previous)
      const sessionId = responseSessionId(body, randomUUID)
      const plan = planRun(flow.graph, flow.id, runRequestOf(body, sessionId))
      const log = runLog(request, reply, flow.id, sessionId)
      // one run at a time per session, as for the run route (enqueue: a turn continuing a conversation waits for
      // the one before it); the session is released before the answer
      const signal = cancelledByClient(reply)
      const release = await takeSessionTurn(app, tenant, plan, signal)
      const execute = runExecution(app, opts, request, reply, { plan, stream: body.stream === true, signal })
      const state = { id: sessionId, createdAt: Math.floor(Date.now() / 1000), model: body.model }

      // answer: JSON…
      if (body.stream !== true) {
        try {
          const outcome = await execute()
          await release()
          const text = outputTextOf(log.completed(buildRunResponse(plan, outcome)))
          return responseObject({
            ...state,
            previousResponseId: previous,
            status: 'completed',
            output: [outputMessage(sessionId, text, 'completed')],
            usage: responseUsage(storedMessages(outcome)),
          })
        } catch (error) {
          await release()
          return answerRunFailure(reply, log, error, 'response failed')
        }
      }

      // …or OpenAI's events, ending with `response.completed` or `response.failed`, then `[DONE]`
      opts.streamedRuns.started(request)
      const events = new ResponseEvents({ ...state, previousResponseId: previous })
      const stream = openEventStream(reply, frameResponseEvent)
      const send = (batch: ResponseEvent[]) => {
        for (const event of batch) stream.write(event)
      }
      send(events.start())
      let status = 200
      try {
        const outcome = await execute((event) => {
          if (event.event === 'token') send(events.delta(event.data.chunk))
        })
        await release()
        const text = outputTextOf(log.completed(buildRunResponse(plan, outcome)))
        send(events.complete(text, responseUsage(storedMessages(outcome))))
      } catch (error) {
        await release()
        const failed = runFailure(error)
        status = failed?.statusCode ?? 500
        if (status >= 500) log.failed(error, 'streamed response failed')
        send(
          events.fail({
            code: failed?.code ?? 'RUNSVC_INTERNAL_ERROR',
            message: failed?.message ?? 'Internal server error',
          }),
        )
      } finally {
        opts.streamedRuns.ended(reply, status)
        stream.end(STREAM_DONE)
      }
    },
  )
}

/**
 * `previous_response_id` must name a session of this tenant's flow that has messages: another tenant's session,
 * another flow's, or an unknown ID is a 404 (the message-store answers per tenant; nothing is encoded in the ID).
 */
async function requireSession(request: FastifyRequest, flowId: string, sessionId: string): Promise<void> {
  const found = await request.server.messageStore.history(
    request.tenant,
    { flow_id: flowId, session_id: sessionId, limit: 1 },
    { requestId: request.id },
  )
  if (found.length === 0) throw new Errors.ResponseNotFound(sessionId)
}

/** Every message the run emitted (each model reply's usage is on the Chat Output message storing it). */
const storedMessages = (outcome: RunOutcome) => outcome.results.flatMap((result) => result.messages)
