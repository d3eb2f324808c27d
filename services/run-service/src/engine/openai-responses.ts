import { SessionId } from '@session-runtime/schemas'
import { type Static, Type } from '@sinclair/typebox'
import type { FlowGraph } from './graph-model.js'
import type { RunRequest, RunResponse } from './run-contract.js'

/**
 * Langflow's OpenAI-compatible Responses endpoint (`POST /api/v1/responses`, Langflow's
 * `api/v1/openai_responses.py` and `schema/openai_responses_schemas.py`): `model` names the flow, `input` is the
 * chat input, and the conversation is the session: a response's `id` IS the run's session ID, and
 * `previous_response_id` is the session to continue (Langflow: `session_id = previous_response_id or uuid4()`,
 * `response_id = session_id`). Everything here is plain mapping, without Fastify.
 */

/** The request (Langflow's `OpenAIResponsesRequest`); `input` must not be empty (a 422). */
export const ResponsesRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, description: 'The flow to run: its ID or endpoint name.' }),
    input: Type.String({ minLength: 1, description: "The user's text: the Chat Input's value." }),
    stream: Type.Optional(Type.Boolean({ default: false, description: "Stream OpenAI's response events (SSE)." })),
    background: Type.Optional(Type.Boolean({ description: 'Accepted and ignored, as by Langflow.' })),
    tools: Type.Optional(
      Type.Union([Type.Array(Type.Unknown()), Type.Null()], { description: 'Not supported: a 422 when given.' }),
    ),
    previous_response_id: Type.Optional(
      Type.Union([SessionId, Type.Null()], {
        description:
          "The `id` of an earlier response of this flow (its session): continues that conversation; 404 when this tenant's flow has no such session.",
      }),
    ),
    include: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
  },
  { $id: 'ResponsesRequest' },
)
export type ResponsesRequest = Static<typeof ResponsesRequest>

export const OutputText = Type.Object({
  type: Type.Literal('output_text'),
  text: Type.String(),
  annotations: Type.Array(Type.Unknown()),
})
export type OutputText = Static<typeof OutputText>

export const OutputMessage = Type.Object({
  type: Type.Literal('message'),
  id: Type.String(),
  status: Type.Union([Type.Literal('in_progress'), Type.Literal('completed')]),
  role: Type.Literal('assistant'),
  content: Type.Array(OutputText),
})
export type OutputMessage = Static<typeof OutputMessage>

const nullableObject = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])

/** The response object (Langflow's `OpenAIResponsesResponse`, OpenAI's `Response`). */
export const ResponseObject = Type.Object(
  {
    id: Type.String({ description: "The run's session ID: pass it as the next `previous_response_id`." }),
    object: Type.Literal('response'),
    created_at: Type.Integer(),
    status: Type.Union([Type.Literal('completed'), Type.Literal('in_progress'), Type.Literal('failed')]),
    error: nullableObject,
    incomplete_details: nullableObject,
    instructions: Type.Null(),
    max_output_tokens: Type.Null(),
    model: Type.String(),
    output: Type.Array(OutputMessage),
    parallel_tool_calls: Type.Boolean(),
    previous_response_id: Type.Union([Type.String(), Type.Null()]),
    reasoning: Type.Object({ effort: Type.Null(), summary: Type.Null() }),
    store: Type.Boolean(),
    temperature: Type.Number(),
    text: Type.Object({ format: Type.Object({ type: Type.Literal('text') }) }),
    tool_choice: Type.String(),
    tools: Type.Array(Type.Unknown()),
    top_p: Type.Number(),
    truncation: Type.String(),
    usage: nullableObject,
    user: Type.Null(),
    metadata: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'ResponseObject' },
)
export type ResponseObject = Static<typeof ResponseObject>

/** Langflow's rule: a flow serves the endpoint only if it has a Chat Input. */
export function hasChatInput(graph: FlowGraph): boolean {
  return graph.nodes.some((node) => node.type === 'ChatInput' || node.type === 'Chat Input')
}

/** The session a request runs in, which is also its response's `id`. */
export function responseSessionId(request: ResponsesRequest, newId: () => string): string {
  return request.previous_response_id || newId()
}

/** The run it makes (Langflow's `SimplifiedAPIRequest`: chat in, chat out, no tweaks). */
export function runRequestOf(request: ResponsesRequest, sessionId: string): RunRequest {
  return { input_value: request.input, input_type: 'chat', output_type: 'chat', tweaks: {}, session_id: sessionId }
}

/**
 * The reply's text, as Langflow finds it: the first reported component's first message, else its first output
 * that is text (the Message's text, or a plain string).
 */
export function outputTextOf(run: RunResponse): string {
  for (const result of run.outputs[0]?.outputs ?? []) {
    const first = result.messages[0]
    if (first) return first.message
    for (const value of Object.values(result.results)) {
      if (typeof value === 'string') return value
      const text = (value as { text?: unknown } | null)?.text
      if (typeof text === 'string') return text
    }
  }
  return ''
}

/** The response's one output item: the assistant's message (Langflow: id `msg_<response id>`). */
export function outputMessage(responseId: string, text: string, status: OutputMessage['status']): OutputMessage {
  return {
    type: 'message',
    id: `msg_${responseId}`,
    status,
    role: 'assistant',
    content: status === 'completed' ? [outputText(text)] : [],
  }
}

const outputText = (text: string): OutputText => ({ type: 'output_text', text, annotations: [] })

export interface ResponseState {
  id: string
  createdAt: number
  model: string
  previousResponseId: string | null
  status: ResponseObject['status']
  output: OutputMessage[]
  error?: { code: string; message: string } | null
  usage?: ResponseObject['usage']
}

/**
 * OpenAI's `usage` of a response: the sums of the `properties.usage` (Langflow's, recorded on model replies)
 * of the messages the run stored; null when none carries any (a flow without a model; Langflow always null).
 */
export function responseUsage(messages: readonly { properties?: Record<string, unknown> }[]): ResponseObject['usage'] {
  const sums = { input_tokens: 0, output_tokens: 0, total_tokens: 0 }
  let any = false
  for (const message of messages) {
    const usage = message.properties?.usage as Record<string, unknown> | undefined
    if (typeof usage !== 'object' || usage === null) continue
    const counts = (['input_tokens', 'output_tokens', 'total_tokens'] as const).map((key) => usage[key])
    if (!counts.every((count) => Number.isSafeInteger(count) && (count as number) >= 0)) continue
    any = true
    sums.input_tokens += counts[0] as number
    sums.output_tokens += counts[1] as number
    sums.total_tokens += counts[2] as number
  }
  if (!any) return null
  return {
    input_tokens: sums.input_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: sums.output_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: sums.total_tokens,
  }
}

/** The whole response object, Langflow's defaults in the fields it does not use. */
export function responseObject(state: ResponseState): ResponseObject {
  return {
    id: state.id,
    object: 'response',
    created_at: state.createdAt,
    status: state.status,
    error: state.error ?? null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: state.model,
    output: state.output,
    parallel_tool_calls: true,
    previous_response_id: state.previousResponseId,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: state.usage ?? null,
    user: null,
    metadata: {},
  }
}

/** One server-sent event: `event: <type>` and its JSON `data`. */
export interface ResponseEvent {
  type: string
  sequence_number: number
  [field: string]: unknown
}

/** An SSE frame: the event's type as the SSE event name, its JSON as the data line. */
export function frameResponseEvent(event: ResponseEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`
}

/** The stream's last line (Langflow ends its stream with it; OpenAI's SDK stops reading there). */
export const STREAM_DONE = 'data: [DONE]\n\n'

/**
 * OpenAI's streaming events of one response, in their order: `response.created`, `response.in_progress`, the
 * message item and its text part opened, `response.output_text.delta` per chunk, then the text, part and item
 * done and `response.completed` (or `response.failed`). Each call returns the events to send now, numbered.
 */
export class ResponseEvents {
  #sequence = 0
  #opened = false
  #streamed = ''
  readonly #state: ResponseState
  readonly #itemId: string

  constructor(state: Omit<ResponseState, 'status' | 'output'>) {
    this.#state = { ...state, status: 'in_progress', output: [] }
    this.#itemId = `msg_${state.id}`
  }

  /** `response.created` and `response.in_progress`. */
  start(): ResponseEvent[] {
    const response = responseObject(this.#state)
    return [this.#event('response.created', { response }), this.#event('response.in_progress', { response })]
  }

  /** A chunk of the reply's text (the item and its part are opened before the first). */
  delta(chunk: string): ResponseEvent[] {
    if (chunk === '') return []
    const events = this.#open()
    this.#streamed += chunk
    events.push(this.#event('response.output_text.delta', { ...this.#where(), delta: chunk, logprobs: [] }))
    return events
  }

  /**
   * The run's reply: whatever of it was not streamed as deltas (all of it when no model streamed tokens, e.g. a
   * flow without a model) is sent as one last delta, then the closing events with the full text.
   */
  complete(text: string, usage: ResponseObject['usage'] = null): ResponseEvent[] {
    const rest = text.startsWith(this.#streamed) ? text.slice(this.#streamed.length) : ''
    const events = [...this.#open(), ...this.delta(rest)]
    const part = outputText(text)
    const item: OutputMessage = { ...outputMessage(this.#state.id, text, 'completed'), content: [part] }
    events.push(
      this.#event('response.output_text.done', { ...this.#where(), text, logprobs: [] }),
      this.#event('response.content_part.done', { ...this.#where(), part }),
      this.#event('response.output_item.done', { output_index: 0, item }),
    )
    const response = responseObject({ ...this.#state, status: 'completed', output: [item], usage })
    events.push(this.#event('response.completed', { response }))
    return events
  }

  /** The run failed: `response.failed`, its error in the response (`code`, `message`). */
  fail(error: { code: string; message: string }): ResponseEvent[] {
    const response = responseObject({ ...this.#state, status: 'failed', error })
    return [this.#event('response.failed', { response })]
  }

  #open(): ResponseEvent[] {
    if (this.#opened) return []
    this.#opened = true
    return [
      this.#event('response.output_item.added', {
        output_index: 0,
        item: outputMessage(this.#state.id, '', 'in_progress'),
      }),
      this.#event('response.content_part.added', { ...this.#where(), part: outputText('') }),
    ]
  }

  #where() {
    return { item_id: this.#itemId, output_index: 0, content_index: 0 }
  }

  #event(type: string, fields: Record<string, unknown>): ResponseEvent {
    return { type, sequence_number: this.#sequence++, ...fields }
  }
}

/** OpenAI's `error` object, next to the envelope's `detail` and `code` in every error answer of the endpoint. */
export function openAIError(status: number, detail: string, code: string) {
  return {
    message: detail,
    type: status >= 500 ? 'server_error' : 'invalid_request_error',
    param: null,
    code,
  }
}
