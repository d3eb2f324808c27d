import type { Message } from '@session-runtime/schemas'
import type { GraphProblem } from './graph-model.js'

/** Errors of the engine; each says which HTTP status the route answers with. */
export abstract class EngineError extends Error {
  abstract readonly code: string
  abstract readonly statusCode: number
}

/** The flow cannot run: every problem of the graph (a 422 on import). */
export class FlowInvalidError extends EngineError {
  readonly code = 'RUN_FLOW_INVALID'
  readonly statusCode = 422
  constructor(readonly problems: readonly GraphProblem[]) {
    super(`The flow cannot run: ${problems.map((problem) => problem.message).join('; ')}`)
    this.name = 'FlowInvalidError'
  }
}

/** A tweak sets `input_value` on an input component that also receives the request's `input_value`. */
export class TweakConflictError extends EngineError {
  readonly code = 'RUN_TWEAK_CONFLICT'
  readonly statusCode = 400
  constructor(readonly nodeId: string) {
    super(`A tweak sets input_value on ${nodeId}, which also receives the request's input_value`)
    this.name = 'TweakConflictError'
  }
}

/** A tweak value the engine cannot use (e.g. a `session_id` that is not a session ID). */
export class InvalidTweakError extends EngineError {
  readonly code = 'RUN_INVALID_TWEAK'
  readonly statusCode = 422
  constructor(
    readonly nodeId: string,
    readonly field: string,
    reason: string,
  ) {
    super(`Invalid tweak of ${field} on ${nodeId}: ${reason}`)
    this.name = 'InvalidTweakError'
  }
}

/** `output_component` names no node of the flow. */
export class UnknownOutputComponentError extends EngineError {
  readonly code = 'RUN_UNKNOWN_OUTPUT_COMPONENT'
  readonly statusCode = 400
  constructor(readonly outputComponent: string) {
    super(`output_component ${outputComponent} is neither a node id nor a display name of this flow`)
    this.name = 'UnknownOutputComponentError'
  }
}

/**
 * Thrown by a ModelPort when the provider fails or times out: the run then answers 502.
 * `timeout` tells the two apart.
 */
export class ModelProviderError extends Error {
  constructor(
    message: string,
    readonly timeout = false,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'ModelProviderError'
  }
}

export interface FailedComponent {
  nodeId: string
  displayName: string
  componentType: string
}

/**
 * A component failed; the run stopped. `cause` is what the component threw (a ModelProviderError
 * makes it a 502; anything else a 500 — unless the route maps the cause, e.g. the message-store
 * being unavailable, itself). `errorMessage` is the error message stored in the component's session.
 */
export class ComponentFailedError extends EngineError {
  readonly code = 'RUN_COMPONENT_FAILED'
  readonly statusCode: 500 | 502
  readonly providerFailed: boolean
  /** The stored error message; undefined if storing it failed too (see `errorMessageFailure`). */
  errorMessage: Message | undefined
  errorMessageFailure: unknown

  constructor(
    readonly component: FailedComponent,
    readonly reason: string,
    options: { cause: unknown },
  ) {
    super(`Error running component "${component.displayName}" (${component.nodeId}): ${reason}`, options)
    this.name = 'ComponentFailedError'
    this.providerFailed = options.cause instanceof ModelProviderError
    this.statusCode = this.providerFailed ? 502 : 500
  }
}

/** The run was cancelled through its AbortSignal (e.g. the client went away). */
export class RunAbortedError extends EngineError {
  readonly code = 'RUN_ABORTED'
  readonly statusCode = 499
  constructor(options?: ErrorOptions) {
    super('The run was cancelled', options)
    this.name = 'RunAbortedError'
  }
}

/** The text of a thrown value, for error messages. */
export function errorReason(error: unknown): string {
  if (error instanceof Error) return error.message || error.name
  return String(error)
}
