import type { SessionMetadataPatch } from '@session-runtime/schemas'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  executeRun,
  type ModelDefaults,
  type ModelPort,
  RunAbortedError,
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
  run: {
    plan: RunPlan
    stream: boolean
    sessionMetadata?: SessionMetadataPatch | null | undefined
    /** The run's cancellation (the client going away); made here when absent. */
    signal?: AbortSignal
  },
): (onEvent?: (event: RunEvent) => void) => Promise<RunOutcome> {
  const signal = run.signal ?? cancelledByClient(reply)
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
 * Waits for the run's turn on its session (one run at a time per session, docs/run-service.md): resolves with the
 * release to call once the run is over, before its answer. With `reject` a session in use is a 409
 * (RUNSVC_SESSION_BUSY); a client that goes away while waiting cancels the run.
 */
export async function takeSessionTurn(
  app: FastifyInstance,
  tenant: string,
  plan: RunPlan,
  signal: AbortSignal,
): Promise<() => Promise<void>> {
  return app.sessionTurns
    .acquire({ tenant, flowId: plan.flowId, sessionId: plan.sessionId }, plan.multitaskStrategy, signal)
    .catch((error: unknown) => {
      throw signal.aborted ? new RunAbortedError({ cause: error }) : error
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
