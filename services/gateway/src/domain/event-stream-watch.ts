/**
 * Watches a streamed run as it passes through (spec §3 "Streaming": Langflow's format, one JSON object
 * `{"event": "<name>", "data": {...}}` per line, then a blank line; not `data:`-framed) and tells what must be
 * appended if the stream stops at this point: nothing after a final event (`end` or `error`), else one `error`
 * event, so that a stream never just stops. It never holds anything back: it keeps a copy of the line under way
 * and of the last complete one only (one event each), and lines are split on the newline byte, so a character
 * split across chunks is never cut. A line is decoded and parsed only when its event is asked for (at the
 * stream's end), not as it passes: a streamed run is mostly token events, one every few tens of milliseconds.
 */

const NEWLINE = 0x0a
const FINAL_EVENTS = new Set(['end', 'error'])
const decoder = new TextDecoder()
/** `#lastEvent` not worked out yet from `#lastLine`. */
const UNREAD = Symbol('unread')

/** The event named by one line of the stream, or undefined when the line is not a (complete) event. */
export function eventName(line: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(line)
    if (typeof parsed !== 'object' || parsed === null) return undefined
    const name = (parsed as { event?: unknown }).event
    return typeof name === 'string' ? name : undefined
  } catch {
    return undefined
  }
}

/**
 * One `error` event in the run-service's framing (its `frameEvent`, in routes/run/event-stream.ts): the JSON line,
 * then a blank line.
 */
export function errorEvent(message: string): string {
  return `${JSON.stringify({ event: 'error', data: { error: message } })}\n\n`
}

/** How a kind of stream ends, and what is appended to one that stopped without its end. */
export interface StreamFormat {
  /** Whether the last complete (non-blank) line of a stream is its final one. */
  isFinal(line: string): boolean
  /** What ends a stream that stopped without its final line: an error, in the stream's own framing. */
  errorEvent(message: string): string
}

/** Langflow's streamed runs (`/api/v1/run`): the last event is `end` or `error`. */
export const LANGFLOW_STREAM: StreamFormat = {
  isFinal: (line) => FINAL_EVENTS.has(eventName(line) ?? ''),
  errorEvent,
}

/**
 * OpenAI's server-sent response events (`/api/v1/responses`: `event:` and `data:` lines), which end with
 * `data: [DONE]`; a broken one gets OpenAI's `error` event (its SDKs raise it as an error), then `[DONE]`.
 */
export const OPENAI_RESPONSE_STREAM: StreamFormat = {
  isFinal: (line) => line.trim() === 'data: [DONE]',
  errorEvent: (message) =>
    `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'GATEWAY_STREAM_BROKEN', message, param: null })}\n\n` +
    'data: [DONE]\n\n',
}

export class EventStreamWatch {
  readonly #format: StreamFormat
  /** The last complete line's verdict (`#format.isFinal`), worked out when asked for. */
  #lastFinal: boolean | typeof UNREAD = false

  constructor(format: StreamFormat = LANGFLOW_STREAM) {
    this.#format = format
  }

  /** The bytes of the line under way (not yet ended by a newline). */
  #line: Uint8Array[] = []
  #lineBytes = 0
  /** The last complete (newline-ended) line that was not blank, as it came (a copy). */
  #lastLine: Uint8Array | undefined
  /** Its event's name; undefined when that line is no event; UNREAD until asked for. */
  #lastEvent: string | undefined | typeof UNREAD
  /** Anything seen at all. */
  #started = false
  /** How many newlines the stream seen so far ends with (0 in the middle of a line). */
  #trailingNewlines = 0

  /** Sees the next chunk of the stream, as it is passed on. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.#started = true
    let start = 0
    for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
      this.#collect(chunk.subarray(start, end))
      this.#endLine()
      start = end + 1
    }
    this.#collect(chunk.subarray(start))
  }

  /** The event of the last complete line (blank lines aside); undefined if there is none or it is no event. */
  get lastEvent(): string | undefined {
    if (this.#lastEvent === UNREAD) this.#lastEvent = eventName(decoder.decode(this.#lastLine))
    return this.#lastEvent
  }

  /**
   * Whether the stream may stop here: its last line is final (Langflow's: its event is `end` or `error`), a last
   * line without its newline too.
   */
  get final(): boolean {
    if (this.#lastFinal === UNREAD) this.#lastFinal = this.#format.isFinal(decoder.decode(this.#lastLine))
    if (this.#lastFinal) return true
    return this.#lineBytes > 0 && this.#format.isFinal(this.#pending())
  }

  /**
   * What to append when the stream stops here: '' after a final event, else the newlines that end the line
   * under way and the blank line after it, then an `error` event with `message`.
   */
  closing(message: string): string {
    if (this.final) return ''
    const separator = this.#started ? '\n'.repeat(Math.max(0, 2 - this.#trailingNewlines)) : ''
    return separator + this.#format.errorEvent(message)
  }

  #collect(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    // a copy: the chunk itself goes on downstream
    this.#line.push(new Uint8Array(bytes))
    this.#lineBytes += bytes.length
    this.#trailingNewlines = 0
  }

  #endLine(): void {
    this.#trailingNewlines++
    if (this.#lineBytes === 0) return // a blank line (or a lone \r below) separates events: the last one stays
    const line = this.#joined()
    this.#line = []
    this.#lineBytes = 0
    if (isBlank(line)) return
    this.#trailingNewlines = 1
    this.#lastLine = line
    this.#lastEvent = UNREAD
    this.#lastFinal = UNREAD
  }

  /** The line under way, decoded. */
  #pending(): string {
    return decoder.decode(this.#joined())
  }

  /** The bytes of the line under way, in one array. */
  #joined(): Uint8Array {
    if (this.#line.length === 1) return this.#line[0] as Uint8Array
    const bytes = new Uint8Array(this.#lineBytes)
    let at = 0
    for (const part of this.#line) {
      bytes.set(part, at)
      at += part.length
    }
    return bytes
  }
}

/** Whether a line is blank as String.prototype.trim sees it: ASCII whitespace only, else decoded and trimmed. */
function isBlank(line: Uint8Array): boolean {
  for (const byte of line) {
    if (byte >= 0x80) return decoder.decode(line).trim() === ''
    // space, \t, \n, \v, \f, \r
    if (byte !== 0x20 && (byte < 0x09 || byte > 0x0d)) return false
  }
  return true
}
