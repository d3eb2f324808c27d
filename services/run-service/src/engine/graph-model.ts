import type { Message } from '@session-runtime/schemas'
import type { MessageDraft } from './messages.js'
import type { CompletionRequest, CompletionResult, HistoryRequest, ModelDefaults } from './ports.js'
import type { FlowValue } from './values.js'

/*
 * The engine's model: a parsed flow graph and the component contract its nodes refer to. The two refer to
 * each other (a node names its component; a component reads its node), so they live in one module, which
 * imports nothing of the engine that imports it back.
 */

/** One component of a flow. Sticky notes are not nodes. */
export interface FlowNode {
  readonly id: string
  /** `data.type`. */
  readonly type: string
  readonly displayName: string
  /** `template.<field>.value` for every field but `code`. */
  readonly values: Readonly<Record<string, unknown>>
  /** The registered component; null when the type is unknown (a problem). */
  readonly component: ComponentDefinition | null
}

/** `sourceHandle.{id, name}` → `targetHandle.{id, fieldName}`. */
export interface FlowEdge {
  readonly id: string
  readonly source: string
  readonly sourceOutput: string
  readonly target: string
  readonly targetField: string
}

export interface FlowGraph {
  /** In the flow file's order. */
  readonly nodes: readonly FlowNode[]
  /** Edges whose two ends exist. */
  readonly edges: readonly FlowEdge[]
  readonly byId: ReadonlyMap<string, FlowNode>
  readonly incoming: ReadonlyMap<string, readonly FlowEdge[]>
  readonly outgoing: ReadonlyMap<string, readonly FlowEdge[]>
}

export type GraphProblem = { readonly message: string } & (
  | { readonly kind: 'malformed'; readonly at: string }
  | { readonly kind: 'duplicate-node'; readonly nodeId: string }
  | { readonly kind: 'unknown-component'; readonly nodeId: string; readonly componentType: string }
  | {
      readonly kind: 'missing-node'
      readonly edgeId: string
      readonly nodeId: string
      readonly end: 'source' | 'target'
    }
  | { readonly kind: 'unknown-field'; readonly edgeId: string; readonly nodeId: string; readonly field: string }
  | { readonly kind: 'unknown-output'; readonly edgeId: string; readonly nodeId: string; readonly output: string }
  | { readonly kind: 'duplicate-input'; readonly nodeId: string; readonly field: string; readonly edgeIds: string[] }
  | { readonly kind: 'invalid-session-id'; readonly nodeId: string }
  | { readonly kind: 'cycle'; readonly nodeIds: string[] }
)

export interface ParsedFlow {
  readonly graph: FlowGraph
  /** Every problem found; empty when the flow can run. */
  readonly problems: GraphProblem[]
}

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

/** Component definitions keyed by the flow JSON's `data.type`. */
export type ComponentRegistry = ReadonlyMap<string, ComponentDefinition>

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
  /**
   * It reads only what components put into the Messages it receives (text, sender, sender name, files,
   * session, context), never what the message-store assigns (the timestamp), so it may run before they are
   * stored. Before any other component receiving a Message not stored yet, the run stores it first.
   */
  readonly readsMessageContentOnly?: boolean
  run(ctx: ComponentContext, inputs: ComponentInputs): Promise<ComponentOutputs>
}

/** The one rule for "the node has that field" (edges, tweaks). */
export function acceptsField(component: ComponentDefinition, node: FlowNode, field: string): boolean {
  return component.inputs.includes(field) || (component.variableInputs?.(node).includes(field) ?? false)
}
