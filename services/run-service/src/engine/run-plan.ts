import { isValidSessionId } from '@session-runtime/schemas'
import type { FlowGraph } from './graph-model.js'
import type { RunRequest } from './run-contract.js'
import { inputReceivers, reportedComponents } from './selection.js'
import { resolveComponentSession, runSessionId } from './session.js'
import { applyRequestInput, applyTweaks, type NodeOverrides } from './tweaks.js'

/** A run request checked against its flow, before anything runs. */
export interface RunPlan {
  readonly graph: FlowGraph
  readonly flowId: string
  /** The request's `session_id`; undefined when absent, null or ''. */
  readonly requestSessionId: string | undefined
  /** The request's `input_value`; null = components keep their stored value. */
  readonly inputValue: string | null
  /** Tweaks and the request's `input_value`, per node. */
  readonly overrides: NodeOverrides
  /** The node ids the response reports. */
  readonly reportedNodeIds: readonly string[]
  /**
   * The session the run takes its turn on (one run at a time per session): its top-level `session_id` as far
   * as it is known before the run (`plannedSessionId`).
   */
  readonly sessionId: string
  /** `enqueue` (default): wait for the session's earlier runs; `reject`: refused while another is in flight. */
  readonly multitaskStrategy: 'enqueue' | 'reject'
}

/**
 * Everything about a request that can fail before the flow starts: tweak conflicts (400), invalid
 * tweaks (422), an unknown `output_component` (400). `graph` must be valid (no problems).
 */
export function planRun(graph: FlowGraph, flowId: string, request: RunRequest): RunPlan {
  const inputValue = request.input_value ?? null
  const tweaked = applyTweaks(graph, request.tweaks ?? {})
  const overrides = applyRequestInput(tweaked, inputReceivers(graph, request.input_type ?? 'chat'), inputValue)
  const reported = reportedComponents(graph, request.output_type ?? 'chat', request.output_component ?? '')
  const requestSessionId = request.session_id || undefined
  return {
    graph,
    flowId,
    requestSessionId,
    inputValue,
    overrides,
    reportedNodeIds: reported.map((node) => node.id),
    sessionId: plannedSessionId(graph, flowId, requestSessionId, overrides),
    multitaskStrategy: request.multitask_strategy ?? 'enqueue',
  }
}

/**
 * The run's top-level session (spec §2, `runSessionId`) before the run: the request's `session_id`; else the
 * first ChatInput's own setting (this run's tweak, else the value stored in the flow); else the flow ID. A
 * ChatInput whose `session_id` is wired by an edge gets it only while the run goes: the flow ID stands in
 * (coarser: such runs of the flow without a request `session_id` take turns on the flow), as does an invalid
 * value (the run fails on it anyway).
 */
export function plannedSessionId(
  graph: FlowGraph,
  flowId: string,
  requestSessionId: string | undefined,
  overrides: NodeOverrides,
): string {
  if (requestSessionId) return requestSessionId
  const chatInput = graph.nodes.find(
    (node) => node.component?.io?.role === 'input' && node.component.io.kind === 'chat',
  )
  if (!chatInput?.component) return flowId
  const wired = graph.incoming.get(chatInput.id)?.some((edge) => edge.targetField === 'session_id')
  if (wired) return flowId
  const resolved = resolveComponentSession({
    requestSessionId: undefined,
    flowId,
    hasSessionField: chatInput.component.inputs.includes('session_id'),
    wiredSessionId: undefined,
    tweakedSessionId: overrides.get(chatInput.id)?.session_id,
    storedSessionId: chatInput.values.session_id,
    mainInput: undefined,
  })
  const own = resolved.source !== 'flow' && isValidSessionId(resolved.sessionId) ? resolved.sessionId : undefined
  return runSessionId(undefined, own, flowId)
}
