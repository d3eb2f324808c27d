import type { Message, MessageInput } from '@session-runtime/schemas'
import { localMessage } from '../../src/engine/messages.js'
import type {
  CompletionRequest,
  CompletionResult,
  HistoryRequest,
  MessagePort,
  ModelPort,
  PortOptions,
} from '../../src/index.js'

/**
 * An in-memory message-store: stores (idempotent on id), answers histories like the real one
 * (the latest `limit` messages of flow + session, error messages excluded, in `order`).
 */
export class FakeMessageStore implements MessagePort {
  readonly messages: Message[] = []
  readonly historyCalls: HistoryRequest[] = []
  /** Milliseconds each store call takes (to expose missing awaits). */
  storeDelay = 0
  private clock = Date.parse('2025-01-01T00:00:00.000Z')

  async store(input: MessageInput, { signal }: PortOptions): Promise<Message> {
    signal.throwIfAborted()
    if (this.storeDelay > 0) await new Promise((resolve) => setTimeout(resolve, this.storeDelay))
    const existing = this.messages.find((message) => message.id === input.id)
    if (existing) return structuredClone(existing)
    const message: Message = {
      ...localMessage(input),
      // timestamps from a steady clock; properties only as sent
      timestamp: new Date(this.clock++).toISOString().replace('Z', '000Z'),
      properties: input.properties ?? {},
    }
    this.messages.push(message)
    return structuredClone(message)
  }

  async history(query: HistoryRequest, { signal }: PortOptions): Promise<Message[]> {
    signal.throwIfAborted()
    this.historyCalls.push(query)
    const matching = this.messages.filter(
      (message) =>
        message.flow_id === query.flowId &&
        message.session_id === query.sessionId &&
        !message.error &&
        (query.sender === undefined || message.sender === query.sender) &&
        (query.senderName === undefined || message.sender_name === query.senderName),
    )
    const latest = matching.slice(-query.limit)
    return structuredClone(query.order === 'DESC' ? latest.reverse() : latest)
  }

  /** Every stored message of a session, error messages included. */
  session(sessionId: string): Message[] {
    return this.messages.filter((message) => message.session_id === sessionId)
  }
}

/** A model that answers `reply(request)`; streams it word by word when asked to. */
export class FakeModel implements ModelPort {
  readonly calls: CompletionRequest[] = []
  reply: (request: CompletionRequest, signal: AbortSignal) => string | Promise<string> = (request) =>
    `echo: ${request.input}`

  async complete(request: CompletionRequest, { signal }: PortOptions): Promise<CompletionResult> {
    this.calls.push(request)
    signal.throwIfAborted()
    const text = await this.reply(request, signal)
    if (request.stream) for (const chunk of text.split(/(?<= )/)) request.onToken?.(chunk)
    return { text }
  }
}
