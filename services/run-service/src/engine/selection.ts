import { UnknownOutputComponentError } from './errors.js'
import type { FlowGraph, FlowNode } from './graph-model.js'

export type InputType = 'chat' | 'text' | 'any'
export type OutputType = 'chat' | 'text' | 'any' | 'debug'

/** The input components that receive the request's `input_value`: ChatInput, TextInput, or both. */
export function inputReceivers(graph: FlowGraph, inputType: InputType): FlowNode[] {
  return graph.nodes.filter((node) => {
    const io = node.component?.io
    return io?.role === 'input' && (inputType === 'any' || io.kind === inputType)
  })
}

/**
 * The components a run reports (spec §3), in file order. `output_component` (a node id, else a
 * display name) wins; `debug` reports every component; otherwise the output components of the
 * type asked for, or all output components if none matches.
 */
export function reportedComponents(graph: FlowGraph, outputType: OutputType, outputComponent: string): FlowNode[] {
  if (outputComponent !== '') {
    const byId = graph.byId.get(outputComponent)
    const selected = byId ? [byId] : graph.nodes.filter((node) => node.displayName === outputComponent)
    if (selected.length === 0) throw new UnknownOutputComponentError(outputComponent)
    return selected
  }
  if (outputType === 'debug') return [...graph.nodes]
  const outputs = graph.nodes.filter((node) => node.component?.io?.role === 'output')
  const matching = outputs.filter((node) => outputType === 'any' || node.component?.io?.kind === outputType)
  return matching.length > 0 ? matching : outputs
}
