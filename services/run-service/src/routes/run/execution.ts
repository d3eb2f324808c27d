import type { SessionMetadataPatch } from '@session-runtime/schemas'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  executeRun,
  type ModelDefaults,
  type ModelPort,
  type RunEvent,
  type RunOutcome,
  type RunPlan,
} from '../../engine/index.js'
import { runFailure } from '../../errors.js'
import { messageStorePort } from '../../ports/message-store.js'
import { cancelledByClient } from './cancellation.js'
import type { RunLog } from './run-log.js'

export interface RunExecutionOptions {
  model: ModelPort
  modelDefaults: ModelDefaults
}

/**
 * Executes a planned run for one request of the request's tenant: messages through the message-store (their
 * writes tagged with the request ID), cancelled when the client goes away. Shared by the run route and the
 * Responses route.
 */
export function runExecution(
  app: FastifyInstance,
  opts: RunExecutionOptions,
  request: FastifyRequest,
  reply: FastifyReply,
  run: { plan: RunPlan; stream: boolean; sessionMetadata?: SessionMetadataPatch | null | undefined },
): (onEvent?: (event: RunEvent) => void) => Promise<RunOutcome> {
  const signal = cancelledByClient(reply)
  // every model call's usage is counted (`model_tokens_total`), a failed run's calls too
  const model: ModelPort = {
    async complete(completion, options) {
      const result = await opts.model.complete(completion, options)
      if (result.usage) app.tokenMetrics.used(request.tenant, run.plan.flowId, result.usage)
      return result
    },
  }
  return (onEvent) =>
    executeRun(run.plan, {
      messages: messageStorePort(
        app.messageStore,
        request.tenant,
        request.id,
        app.unconfirmedMessages,
        run.sessionMetadata,
      ),
      model,
      modelDefaults: opts.modelDefaults,
      stream: run.stream,
      signal,
      onEvent,
    })
}

/**
 * The JSON answer of a run that started and then failed (`runFailure`: cancelled, or a component failed), its
 * 5xx logged; anything else is rethrown (a bug: the error handler's 500).
 */
export function answerRunFailure(reply: FastifyReply, log: RunLog, error: unknown, message: string) {
  const failed = runFailure(error)
  if (!failed) throw error
  const status = failed.statusCode ?? 500
  if (status >= 500) log.failed(error, message)
  return reply.code(status).send({ detail: failed.message, code: failed.code })
}
