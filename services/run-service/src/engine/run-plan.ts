import type { FlowGraph } from './graph-model.js'
import type { RunRequest } from './run-contract.js'
import { inputReceivers, reportedComponents } from './selection.js'
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
  return {
    graph,
    flowId,
    requestSessionId: request.session_id || undefined,
    inputValue,
    overrides,
    reportedNodeIds: reported.map((node) => node.id),
  }
}
