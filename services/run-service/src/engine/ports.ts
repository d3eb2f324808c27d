import type { Message, MessageInput } from '@session-runtime/schemas'

/** Every port call carries the run's signal: aborting the run aborts the call. */
export interface PortOptions {
  signal: AbortSignal
}

/** A history read: the latest `limit` messages of (flow, session), error messages excluded. */
export interface HistoryRequest {
  flowId: string
  sessionId: string
  limit: number
  order: 'ASC' | 'DESC'
  sender?: string
  senderName?: string
}

/** Where emitted messages go and histories come from (the message-store, for the run's tenant). */
export interface MessagePort {
  /** Stores one message (idempotent on `message.id`) and answers the stored message. */
  store(message: MessageInput, options: PortOptions): Promise<Message>
  /**
   * Stores several messages in order, in one write where it can (idempotent on ids), and answers the stored
   * messages in the same order. If it stored some of them and then failed, it rejects with PartialWriteError;
   * any other rejection means none of them is known to be stored. Without it, the engine calls `store` for
   * each message in turn.
   */
  storeMany?(messages: readonly MessageInput[], options: PortOptions): Promise<Message[]>
  history(query: HistoryRequest, options: PortOptions): Promise<Message[]>
  /**
   * `storeMany`, then `history`, in one exchange: the read sees the messages. Any rejection means as for
   * `storeMany` (PartialWriteError if some are known to be stored, else none is). Without it, the engine
   * writes, then reads.
   */
  storeThenHistory?(
    messages: readonly MessageInput[],
    query: HistoryRequest,
    options: PortOptions,
  ): Promise<{ stored: Message[]; history: Message[] }>
}

/** `storeMany` stored its first `stored.length` messages, then failed on the next one (`cause` says why). */
export class PartialWriteError extends Error {
  constructor(
    readonly stored: readonly Message[],
    options: { cause: unknown },
  ) {
    super(`stored ${stored.length} message(s), then failed on the next one`, options)
    this.name = 'PartialWriteError'
  }
}

/** One OpenAI-compatible chat completion. */
export interface CompletionRequest {
  model: string
  baseUrl: string
  apiKey?: string
  /** Omitted when the node has no system message. */
  system?: string
  input: string
  temperature: number
  maxTokens?: number
  stream: boolean
  /** Called with each chunk while streaming (only when `stream` is true). */
  onToken?: (chunk: string) => void
}

/** The tokens a model call used, as the provider reports them, in Langflow's names (`properties.usage`). */
export interface TokenUsage {
  input_tokens: number
  output_tokens: number
  total_tokens: number
}

export interface CompletionResult {
  /** The complete reply. */
  text: string
  /** What the provider reported (`usage`; streamed: the last chunk's, asked for with `include_usage`). */
  usage?: TokenUsage
}

/** The model provider. Throw ModelProviderError when the provider fails or times out (a 502). */
export interface ModelPort {
  complete(request: CompletionRequest, options: PortOptions): Promise<CompletionResult>
}

/** What a model node leaves empty comes from here (OPENAI_BASE_URL, OPENAI_API_KEY, a default model). */
export interface ModelDefaults {
  baseUrl: string
  apiKey?: string
  defaultModel?: string
}

/** Events of a run, in Langflow's streaming vocabulary (spec §3). */
export type RunEvent = { event: 'add_message'; data: Message } | { event: 'token'; data: { chunk: string; id: string } }

export type RunListener = (event: RunEvent) => void

/**
 * A provider's `usage` (OpenAI's `prompt_tokens`, `completion_tokens`, `total_tokens`) in Langflow's names;
 * undefined when it reports none (or nothing usable). A missing total is the sum of the other two.
 */
export function tokenUsage(reported: unknown): TokenUsage | undefined {
  if (typeof reported !== 'object' || reported === null) return undefined
  const { prompt_tokens, completion_tokens, total_tokens } = reported as Record<string, unknown>
  const count = (value: unknown) =>
    Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined
  const input = count(prompt_tokens)
  const output = count(completion_tokens)
  if (input === undefined || output === undefined) return undefined
  return { input_tokens: input, output_tokens: output, total_tokens: count(total_tokens) ?? input + output }
}
