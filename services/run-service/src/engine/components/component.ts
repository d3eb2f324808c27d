import type { Message } from '@session-runtime/schemas'
import type { FlowNode } from '../flow-graph.js'
import type { MessageDraft } from '../messages.js'
import type { CompletionRequest, CompletionResult, HistoryRequest, ModelDefaults } from '../ports.js'
import type { FlowValue } from '../values.js'

/** Field name → value: an edge's value, else the tweak, else the stored node value. */
export type ComponentInputs = Readonly<Record<string, FlowValue | undefined>>

/** Output name → value. */
export type ComponentOutputs = Record<string, FlowValue>

/** What the executor gives a component for one run. */
export interface ComponentContext {
  readonly node: FlowNode
  readonly flowId: string
  /** The session resolved for this component (spec §2, session.ts). */
  readonly sessionId: string
  readonly signal: AbortSignal
  readonly modelDefaults: ModelDefaults
  /** Reads histories (the run's signal is added by the executor). */
  readonly messages: { history(query: HistoryRequest): Promise<Message[]> }
  /** Calls the model provider (the run's signal is added by the executor). */
  readonly model: { complete(request: CompletionRequest): Promise<CompletionResult> }
  /**
   * Streaming: `requested` when the run asked for it (`?stream=true`); `onToken` is there only when
   * this component's reply goes straight into a ChatOutput, whose message id the tokens carry.
   */
  readonly stream: { readonly requested: boolean; readonly onToken?: (chunk: string) => void }
  /** The node feeding `field` through an edge, if any. */
  upstream(field: string): FlowNode | undefined
  /**
   * Emits a message in this component's session. With `store` (the default) it is stored, awaited,
   * and announced as `add_message`; the stored message is returned.
   */
  emit(draft: MessageDraft, options?: { store?: boolean }): Promise<Message>
}

/** Input/output components: which `input_type`/`output_type` selects them. */
export interface IoRole {
  readonly role: 'input' | 'output'
  readonly kind: 'chat' | 'text'
}

/** One component type, keyed by the flow JSON's `data.type`. */
export interface ComponentDefinition {
  readonly type: string
  /** Field names accepted from edges and tweaks. */
  readonly inputs: readonly string[]
  /** Fields that depend on the node's stored values (a Prompt's template variables). */
  readonly variableInputs?: (node: FlowNode) => readonly string[]
  readonly outputs: readonly string[]
  readonly io?: IoRole
  readonly emitsMessages: boolean
  readonly readsMessages: boolean
  /** The input whose Message's session this component inherits (spec §2, step 3). */
  readonly mainInput?: string
  /** A chat model: streams tokens when its reply goes straight into a ChatOutput. */
  readonly streamsTokens?: boolean
  run(ctx: ComponentContext, inputs: ComponentInputs): Promise<ComponentOutputs>
}

/** The one rule for "the node has that field" (edges, tweaks). */
export function acceptsField(component: ComponentDefinition, node: FlowNode, field: string): boolean {
  return component.inputs.includes(field) || (component.variableInputs?.(node).includes(field) ?? false)
}
