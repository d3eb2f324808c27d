import { nameRequestSubject } from '@session-runtime/service-kit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ComponentFailedError, ModelProviderError, type RunResponse } from '../../engine/index.js'

export interface RunLog {
  /**
   * Logs `run completed` at `debug` (with the run's session, if the request named none; the gateway's line is
   * the one kept at `info`) and passes the response on.
   */
  completed(response: RunResponse): RunResponse
  /** Logs a failed run at `error`, scrubbed (`loggedFailure`). */
  failed(error: unknown, message: string): void
}

/**
 * The log of one run: from here on every line of the request names the run's flow and, as soon as it is known,
 * its session (the request ID is there already); the answer names them too, for the gateway's line
 * (`nameRequestSubject`: a streamed run names the session the request gave, its headers being sent first).
 */
export function runLog(
  request: FastifyRequest,
  reply: FastifyReply,
  flowId: string,
  requestSessionId: string | undefined,
): RunLog {
  nameRequestSubject(request, reply, { flowId, sessionId: requestSessionId })
  const started = performance.now()
  return {
    completed(response) {
      if (!requestSessionId) nameRequestSubject(request, reply, { sessionId: response.session_id })
      request.log.debug({ durationMs: Math.round(performance.now() - started) }, 'run completed')
      return response
    },
    failed(error, message) {
      request.log.error(loggedFailure(error), message)
    },
  }
}

/**
 * What a failed run logs. Message text never goes to the logs, and a failed component's error carries the
 * stored error message, and its cause's words may quote the input (a model provider's error often echoes the
 * prompt): of those, only names, codes, the provider's HTTP status and the stack frames are kept.
 */
export function loggedFailure(error: unknown): Record<string, unknown> {
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
