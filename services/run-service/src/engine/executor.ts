import { randomUUID } from 'node:crypto'
import { isValidSessionId, type Message } from '@session-runtime/schemas'
import { ComponentFailedError, errorReason, RunAbortedError } from './errors.js'
import { topologicalOrder } from './flow-graph.js'
import type {
  ComponentContext,
  ComponentDefinition,
  ComponentInputs,
  ComponentOutputs,
  FlowNode,
} from './graph-model.js'
import { localMessage, type MessageDraft, messageInput, messageProperties } from './messages.js'
import type { MessagePort, ModelDefaults, ModelPort, RunEvent, RunListener } from './ports.js'
import type { RunPlan } from './run-plan.js'
import { resolveComponentSession, runSessionId, type SessionSource } from './session.js'
import { TurnWriteError, TurnWriter } from './turn-writer.js'
import { type FlowValue, messageValue, rawValue } from './values.js'

export interface ExecuteOptions {
  messages: MessagePort
  model: ModelPort
  modelDefaults: ModelDefaults
  /**
   * `?stream=true`: every model node streams (token events) into its ChatOutput, and every message is
   * stored as it is emitted (its `add_message` follows at once). Otherwise the messages emitted between
   * two waits are stored together (one write: turn-writer.ts) and announced once stored.
   */
  stream?: boolean
  /** Cancels the run between components and aborts port calls. */
  signal?: AbortSignal
  /** Receives `add_message` and `token` events as they happen. */
  onEvent?: RunListener
}

/** What one component did, for the response (build-response.ts). */
export interface ComponentResult {
  nodeId: string
  displayName: string
  componentType: string
  sessionId: string
  sessionSource: SessionSource
  outputs: ComponentOutputs
  /** The messages it emitted, stored or not, in order. */
  messages: Message[]
}

export interface RunOutcome {
  /** The run's top-level `session_id` (spec §2). */
  sessionId: string
  /** In execution (completion) order. */
  results: ComponentResult[]
}

/**
 * Runs a planned flow: input components first (one after another, in dependency then file order),
 * then every other component as soon as its upstream components are done, concurrently. Every message
 * the run emits is stored before it resolves, in the order emitted; its outcome carries the stored
 * messages. Rejects with ComponentFailedError (after storing the messages emitted before and an error
 * message in the failing component's session) or RunAbortedError.
 */
export function executeRun(plan: RunPlan, options: ExecuteOptions): Promise<RunOutcome> {
  return new FlowRun(plan, options).execute()
}

/** Who emitted a message, in which session: where the run fails if the message cannot be stored. */
interface Emitter {
  node: FlowNode
  sessionId: string
}

class FlowRun {
  /** Stops the other branches once a component has failed. */
  private readonly stop = new AbortController()
  private readonly signal: AbortSignal
  private readonly tasks = new Map<string, Promise<void>>()
  private readonly outputs = new Map<string, ComponentOutputs>()
  private readonly results: ComponentResult[] = []
  /** ChatOutput node id → the id its message will have, announced by a model's token events. */
  private readonly reservedIds = new Map<string, string>()
  private readonly writer: TurnWriter<Emitter>
  private failure: ComponentFailedError | RunAbortedError | undefined

  constructor(
    private readonly plan: RunPlan,
    private readonly options: ExecuteOptions,
  ) {
    this.signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal
    this.writer = new TurnWriter(options.messages, {
      deferred: !options.stream,
      onStored: (message) => this.notify({ event: 'add_message', data: message }),
    })
  }

  async execute(): Promise<RunOutcome> {
    const order = topologicalOrder(this.plan.graph)
    if (order.length !== this.plan.graph.nodes.length || order.some((node) => !node.component)) {
      throw new TypeError('executeRun needs a graph without problems (see runnableGraph)')
    }
    const inputsDone: Promise<void>[] = []
    for (const node of this.inputPhase(order)) inputsDone.push(this.schedule(node, inputsDone.slice(-1)))
    for (const node of order) if (!this.tasks.has(node.id)) this.schedule(node, inputsDone)
    await Promise.allSettled(this.tasks.values())
    if (!this.failure) {
      try {
        await this.flush()
      } catch (error) {
        if (!this.failure) throw error
      }
    }
    if (this.failure instanceof RunAbortedError && this.writer.hasPending) {
      // What was emitted before the cancellation is stored, as it would have been as it was emitted.
      await this.writer.flush(new AbortController().signal).catch(() => {})
    }
    if (this.failure) throw this.failure
    return { sessionId: this.topLevelSessionId(), results: this.results.map((result) => this.storedResult(result)) }
  }

  /** A result with the stored messages in place of their drafts. */
  private storedResult(result: ComponentResult): ComponentResult {
    const outputs: ComponentOutputs = {}
    for (const [name, value] of Object.entries(result.outputs)) outputs[name] = this.storedValue(value)
    return { ...result, outputs, messages: result.messages.map((message) => this.writer.current(message)) }
  }

  private storedValue(value: FlowValue): FlowValue {
    if (value.kind !== 'message') return value
    const stored = this.writer.current(value.message)
    return stored === value.message ? value : messageValue(stored)
  }

  /**
   * Stores the messages waiting to be. A failed write fails the run at the component that emitted the first
   * message not stored (where it would have failed, each message stored as it was emitted).
   */
  private async flush<T = void>(
    write: () => Promise<T> = () => this.writer.flush(this.signal) as Promise<T>,
  ): Promise<T> {
    try {
      return await write()
    } catch (error) {
      if (error instanceof TurnWriteError) {
        const { node, sessionId } = (error as TurnWriteError<Emitter>).write.origin
        throw await this.fail(node, sessionId, error.cause)
      }
      // Aborted before it started: cancelled, or another component failed.
      if (this.signal.aborted) this.throwIfStopped()
      throw error
    }
  }

  /** Input components whose upstream components (if any) are input components too. */
  private inputPhase(order: readonly FlowNode[]): FlowNode[] {
    const phase = new Set<string>()
    for (const node of order) {
      const upstream = this.plan.graph.incoming.get(node.id) ?? []
      if (node.component?.io?.role === 'input' && upstream.every((edge) => phase.has(edge.source))) phase.add(node.id)
    }
    return order.filter((node) => phase.has(node.id))
  }

  /** Starts `node` once `after` and its upstream components are done (they are scheduled before it). */
  private schedule(node: FlowNode, after: readonly Promise<void>[]): Promise<void> {
    const upstream = (this.plan.graph.incoming.get(node.id) ?? []).map((edge) => this.tasks.get(edge.source))
    const task = (async () => {
      await Promise.all([...after, ...upstream])
      this.throwIfStopped()
      await this.runComponent(node)
    })()
    this.tasks.set(node.id, task)
    return task
  }

  private throwIfStopped(): void {
    if (this.options.signal?.aborted) this.failure ??= new RunAbortedError({ cause: this.options.signal.reason })
    if (this.failure) throw this.failure
  }

  private async runComponent(node: FlowNode): Promise<void> {
    const component = node.component as ComponentDefinition
    let inputs = this.inputsOf(node)
    const session = resolveComponentSession({
      requestSessionId: this.plan.requestSessionId,
      flowId: this.plan.flowId,
      hasSessionField: component.inputs.includes('session_id'),
      wiredSessionId: this.edgeInto(node, 'session_id') ? inputs.session_id : undefined,
      tweakedSessionId: this.plan.overrides.get(node.id)?.session_id,
      storedSessionId: node.values.session_id,
      mainInput: component.mainInput === undefined ? undefined : inputs[component.mainInput],
    })
    const emitted: Message[] = []
    try {
      if (!component.readsMessageContentOnly && this.receivesUnstored(inputs)) {
        // It may read what the store assigns (the timestamp): the messages it receives are stored first.
        await this.flush()
        inputs = this.inputsOf(node)
      }
      if (!isValidSessionId(session.sessionId)) throw new Error(`the session ID from its ${session.source} is invalid`)
      const outputs = await component.run(this.context(node, component, session.sessionId, emitted), inputs)
      this.checkOutputs(node, outputs)
      this.outputs.set(node.id, outputs)
      this.results.push({
        nodeId: node.id,
        displayName: node.displayName,
        componentType: node.type,
        sessionId: session.sessionId,
        sessionSource: session.source,
        outputs,
        messages: emitted,
      })
    } catch (error) {
      const errorSession = isValidSessionId(session.sessionId)
        ? session.sessionId
        : (this.plan.requestSessionId ?? this.plan.flowId)
      throw await this.fail(node, errorSession, error)
    }
  }

  /** Stored node values, then this run's overrides, then edge values (a stored message in place of its draft). */
  private inputsOf(node: FlowNode): ComponentInputs {
    const inputs: Record<string, FlowValue | undefined> = {}
    for (const [field, value] of Object.entries(node.values)) inputs[field] = rawValue(value)
    for (const [field, value] of Object.entries(this.plan.overrides.get(node.id) ?? {})) inputs[field] = rawValue(value)
    for (const edge of this.plan.graph.incoming.get(node.id) ?? []) {
      const value = this.outputs.get(edge.source)?.[edge.sourceOutput]
      inputs[edge.targetField] = value && this.storedValue(value)
    }
    return inputs
  }

  private receivesUnstored(inputs: ComponentInputs): boolean {
    return Object.values(inputs).some((value) => value?.kind === 'message' && this.writer.isUnstored(value.message))
  }

  private edgeInto(node: FlowNode, field: string) {
    return this.plan.graph.incoming.get(node.id)?.find((edge) => edge.targetField === field)
  }

  private checkOutputs(node: FlowNode, outputs: ComponentOutputs): void {
    for (const edge of this.plan.graph.outgoing.get(node.id) ?? []) {
      if (!(edge.sourceOutput in outputs)) throw new Error(`its output ${edge.sourceOutput} was not produced`)
    }
  }

  private context(
    node: FlowNode,
    component: ComponentDefinition,
    sessionId: string,
    emitted: Message[],
  ): ComponentContext {
    const { signal } = this
    const options = this.options
    const tokenTarget = component.streamsTokens ? this.chatOutputFedBy(node) : undefined
    let onToken: ((chunk: string) => void) | undefined
    if (tokenTarget) {
      const id = randomUUID()
      this.reservedIds.set(tokenTarget.id, id)
      onToken = (chunk) => this.notify({ event: 'token', data: { chunk, id } })
    }
    return {
      node,
      flowId: this.plan.flowId,
      sessionId,
      signal,
      modelDefaults: options.modelDefaults,
      // What was emitted is stored before the run waits on anything: a history read sees it, and it is
      // stored even if the run is cancelled or the process dies while it waits.
      messages: {
        history: async (query) => {
          const read = await this.flush(() => this.writer.flushThenHistory(query, this.signal))
          return read()
        },
      },
      model: {
        complete: async (request) => {
          await this.flush()
          return options.model.complete(request, { signal })
        },
      },
      stream: { requested: options.stream ?? false, onToken },
      upstream: (field) => {
        const edge = this.edgeInto(node, field)
        return edge && this.plan.graph.byId.get(edge.source)
      },
      emit: async (draft, { store = true } = {}) => {
        const message = await this.emit(node, sessionId, draft, store)
        emitted.push(message)
        return message
      },
    }
  }

  /** The first ChatOutput (file order) whose main input is wired straight from `node`. */
  private chatOutputFedBy(node: FlowNode): FlowNode | undefined {
    const targets = (this.plan.graph.outgoing.get(node.id) ?? []).flatMap((edge) => {
      const target = this.plan.graph.byId.get(edge.target)
      const component = target?.component
      const fed =
        component?.io?.role === 'output' && component.io.kind === 'chat' && component.mainInput === edge.targetField
      return fed && target ? [target] : []
    })
    return this.plan.graph.nodes.find((candidate) => targets.includes(candidate))
  }

  /**
   * The one way a message leaves a component: tagged with the component's session, stored (or kept for the
   * run's next write: the component gets its draft), announced once stored.
   */
  private async emit(node: FlowNode, sessionId: string, draft: MessageDraft, store: boolean): Promise<Message> {
    const id = this.reservedIds.get(node.id) ?? randomUUID()
    this.reservedIds.delete(node.id)
    const input = messageInput(draft, { id, flowId: this.plan.flowId, sessionId })
    if (!store) return localMessage(input)
    return this.writer.add(input, { node, sessionId }, this.signal)
  }

  /**
   * The first failure stops the run: the messages emitted before it and an error message in the component's
   * session are stored (one write), the other branches are stopped. Later failures (caused by the stop) and
   * cancellations store no error message.
   */
  private async fail(node: FlowNode, sessionId: string, error: unknown): Promise<Error> {
    if (this.options.signal?.aborted) this.failure ??= new RunAbortedError({ cause: this.options.signal.reason })
    if (this.failure) return this.failure
    const failed = new ComponentFailedError(
      { nodeId: node.id, displayName: node.displayName, componentType: node.type },
      errorReason(error),
      { cause: error },
    )
    this.failure = failed
    this.stop.abort(failed)
    try {
      failed.errorMessage = await this.storeErrorMessage(node, sessionId, failed)
    } catch (storeError) {
      failed.errorMessageFailure = storeError
    }
    return failed
  }

  private async storeErrorMessage(node: FlowNode, sessionId: string, failed: ComponentFailedError): Promise<Message> {
    const draft: MessageDraft = {
      text: failed.message,
      sender: 'Machine',
      senderName: node.displayName,
      category: 'error',
      error: true,
      properties: messageProperties({ source: { id: node.id, display_name: node.displayName, source: null } }),
    }
    const input = messageInput(draft, { id: randomUUID(), flowId: this.plan.flowId, sessionId })
    // Not the run's signal: it is aborted by now. Only the caller's cancellation stops this write.
    const signal = this.options.signal ?? new AbortController().signal
    const message = await this.writer.add(input, { node, sessionId }, signal)
    try {
      await this.writer.flush(signal)
    } catch (error) {
      throw error instanceof TurnWriteError ? error.cause : error
    }
    return this.writer.current(message)
  }

  private notify(event: RunEvent): void {
    this.options.onEvent?.(event)
  }

  private topLevelSessionId(): string {
    const firstChatInput = this.plan.graph.nodes.find((node) => {
      const io = node.component?.io
      return io?.role === 'input' && io.kind === 'chat'
    })
    const resolved = this.results.find((result) => result.nodeId === firstChatInput?.id)?.sessionId
    return runSessionId(this.plan.requestSessionId, resolved, this.plan.flowId)
  }
}
