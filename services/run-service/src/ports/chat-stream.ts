import OpenAI from 'openai'
import { type Dispatcher, request } from 'undici'

/**
 * A streamed chat completion (`POST {baseURL}/chat/completions` with `stream: true`) on a plain undici
 * request, its server-sent events read from the Node stream as they arrive. The `openai` SDK does the same
 * on `fetch`: its web streams and nested async generators cost about twice the CPU per token (measured with
 * packages/bench/whole-stack/streams.ts), and a streamed run reads a chunk every few tens of milliseconds for
 * seconds. Failures are the SDK's own errors, as the SDK makes them (APIError.generate for a status,
 * APIConnectionError when the request cannot be sent, APIError for an `error` in the stream), so the port
 * turns them into the same ModelProviderError as for an unstreamed call.
 */
export interface ChatStreamOptions {
  dispatcher: Dispatcher
  baseURL: string
  apiKey: string
  /** The request body, `stream: true` added. */
  body: Record<string, unknown>
  /** Aborts the request and the reading. */
  signal: AbortSignal
  /** Bound of the wait for the headers and between two chunks of the body. */
  timeoutMs: number
  /** Each piece of the reply's text as it arrives (non-empty). */
  onPiece: (piece: string) => void
}

interface ChunkData {
  error?: object
  choices?: { delta?: { content?: unknown } }[]
  usage?: unknown
}

/**
 * The reply's whole text, once the stream ends (`[DONE]` or the end of the body), and the provider's `usage`
 * (asked for with `stream_options.include_usage`: the last chunk, whose `choices` is empty, carries it).
 */
export async function streamChatCompletion(opts: ChatStreamOptions): Promise<{ text: string; usage?: unknown }> {
  const url = `${opts.baseURL.replace(/\/+$/, '')}/chat/completions`
  let res: Dispatcher.ResponseData
  try {
    res = await request(url, {
      method: 'POST',
      dispatcher: opts.dispatcher,
      signal: opts.signal,
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${opts.apiKey}`,
      },
      body: JSON.stringify({ ...opts.body, stream: true, stream_options: { include_usage: true } }),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    })
  } catch (error) {
    if (opts.signal.aborted) throw error
    throw new OpenAI.APIConnectionError({ cause: error as Error })
  }
  if (res.statusCode < 200 || res.statusCode > 299) {
    const text = await res.body.text().catch((error: Error) => error.message)
    const json = parseJson(text)
    throw OpenAI.APIError.generate(res.statusCode, json, json === undefined ? text : undefined, headersOf(res))
  }
  let text = ''
  let usage: unknown
  let done = false
  const events = new ServerSentEvents()
  const decoder = new TextDecoder()
  try {
    for await (const bytes of res.body as AsyncIterable<Uint8Array>) {
      for (const event of events.push(decoder.decode(bytes, { stream: true }))) {
        // read on to the body's end after [DONE], as the SDK does: the connection is then reused
        if (done) continue
        if (event.data.startsWith('[DONE]')) {
          done = true
          continue
        }
        const data = JSON.parse(event.data) as ChunkData
        if (event.event === 'error') throw new OpenAI.APIError(undefined, data.error, undefined, undefined)
        if (data?.error) throw new OpenAI.APIError(undefined, data.error, undefined, headersOf(res))
        if (data?.usage) usage = data.usage
        const piece = data?.choices?.[0]?.delta?.content
        if (typeof piece !== 'string' || piece === '') continue
        text += piece
        opts.onPiece(piece)
      }
    }
  } finally {
    // a failure before the end: the rest is not read, the connection not reused
    if (!res.body.readableEnded) res.body.destroy()
  }
  return { text, usage }
}

/** One event of a server-sent event stream: its `event` field (if any) and its data lines joined. */
export interface ServerSentEvent {
  event?: string
  data: string
}

/**
 * Server-sent events (the WHATWG format: `field: value` lines, an event ends at a blank line; lines end in LF
 * or CRLF) from decoded text in pieces of any size. Only events with data are told; comments and other
 * fields (`id`, `retry`) are skipped.
 */
export class ServerSentEvents {
  #rest = ''
  #data: string[] = []
  #event: string | undefined

  /** The events completed by `text`, in order. */
  push(text: string): ServerSentEvent[] {
    const events: ServerSentEvent[] = []
    const buffer = this.#rest + text
    let start = 0
    for (let end = buffer.indexOf('\n'); end !== -1; end = buffer.indexOf('\n', start)) {
      const line =
        buffer.charCodeAt(end - 1) === 13 && end > start ? buffer.slice(start, end - 1) : buffer.slice(start, end)
      start = end + 1
      if (line === '') {
        if (this.#data.length > 0) events.push({ event: this.#event, data: this.#data.join('\n') })
        this.#data = []
        this.#event = undefined
        continue
      }
      const colon = line.indexOf(':')
      if (colon === 0) continue
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1)
      if (field === 'data') this.#data.push(value)
      else if (field === 'event') this.#event = value
    }
    this.#rest = buffer.slice(start)
    return events
  }
}

function parseJson(text: string): object | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined
  } catch {
    return undefined
  }
}

/** undici's response headers as the SDK's errors keep them (a fetch `Headers`). */
function headersOf(res: Dispatcher.ResponseData): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one)
  }
  return headers
}
