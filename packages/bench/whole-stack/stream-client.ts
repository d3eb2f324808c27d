/**
 * The client side of the slow-streams bench (whole-stack/streams.ts): one streamed run through the gateway
 * (`POST /api/v1/run/{flow}?stream=true`, node:http on a keep-alive agent of its own), read event by event as
 * the bytes arrive, with the time each `token` event reaches the client; and the paced model's reply, so the
 * bench knows what every run must end with and store. The event splitting and the statistics are pure, for
 * test/streams.test.ts.
 */
import http from 'node:http'

/** The paced fake model's reply to `input` (one word, no spaces): `tokens` words, the first one the input. */
export function pacedReply(input: string, tokens: number): string {
  return Array.from({ length: tokens }, (_, k) => (k === 0 ? input : `t${k}`)).join(' ')
}

/**
 * Splits a streamed run's bytes (decoded) into its events: Langflow's framing, one JSON object per line then a
 * blank line (the run-service's `frameEvent`). A token event is told by its start, without parsing it (the
 * client's own cost stays small); any other event is parsed.
 */
export class EventSplitter {
  #pending = ''

  /** The events completed by `text`, in order: `token`, or the parsed event. */
  push(text: string): ('token' | { event: string; data: unknown })[] {
    const events: ('token' | { event: string; data: unknown })[] = []
    let buffer = this.#pending + text
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const frame = buffer.slice(0, end).trim()
      buffer = buffer.slice(end + 2)
      if (frame === '') continue
      if (frame.startsWith('{"event":"token"')) events.push('token')
      else events.push(JSON.parse(frame) as { event: string; data: unknown })
    }
    this.#pending = buffer
    return events
  }

  /** Bytes after the last complete event (a stream must not end with any). */
  get rest(): string {
    return this.#pending
  }
}

export interface StreamRun {
  session: string
  input: string
  /** performance.now() when the request was sent. */
  startedAt: number
  endedAt: number
  status?: number
  /** Milliseconds from the request to the response's headers. */
  headersMs?: number
  /** Milliseconds from the request to the first `add_message` event (the user's message stored). */
  firstMessageMs?: number
  /** Milliseconds from the request to the first token event. */
  firstTokenMs?: number
  tokens: number
  /** When each token event arrived: epoch milliseconds (performance.timeOrigin + performance.now()). */
  tokenAt: number[]
  /** The stream's last event was `end` (and nothing came after it). */
  ended: boolean
  /** The reply's message in the `end` event's result. */
  reply?: { id: string; text: string }
  /** Why the run did not end with `end`: an `error` event's text, a status, a network error. */
  failure?: string
}

export interface StreamRunOptions {
  agent: http.Agent
  host: string
  port: number
  path: string
  headers: Record<string, string>
  session: string
  input: string
  /** Bound of the whole run, milliseconds. */
  timeoutMs: number
}

interface RunResult {
  outputs?: { outputs?: { results?: { message?: { id?: unknown; text?: unknown } } }[] }[]
}

/** The reply's message of a run's result (the `end` event's `data.result`). */
export function replyOf(result: unknown): { id: string; text: string } | undefined {
  const message = (result as RunResult | undefined)?.outputs?.[0]?.outputs?.[0]?.results?.message
  if (typeof message?.id !== 'string' || typeof message.text !== 'string') return undefined
  return { id: message.id, text: message.text }
}

/** One streamed run; never rejects (a failure is in `failure`). */
export function streamRun(opts: StreamRunOptions): Promise<StreamRun> {
  const body = JSON.stringify({ input_value: opts.input, session_id: opts.session })
  const run: StreamRun = {
    session: opts.session,
    input: opts.input,
    startedAt: performance.now(),
    endedAt: 0,
    tokens: 0,
    tokenAt: [],
    ended: false,
  }
  return new Promise((resolve) => {
    let last: string | undefined
    let finished = false
    const finish = (failure?: string) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      run.endedAt = performance.now()
      if (failure && !run.failure) run.failure = failure
      run.ended = !run.failure && last === 'end'
      if (!run.ended && !run.failure) run.failure = `stream ended after ${last ?? 'no event'}`
      resolve(run)
    }
    const req = http.request(
      {
        agent: opts.agent,
        host: opts.host,
        port: opts.port,
        method: 'POST',
        path: opts.path,
        headers: { ...opts.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        run.status = res.statusCode
        run.headersMs = performance.now() - run.startedAt
        res.setEncoding('utf8')
        if (res.statusCode !== 200) {
          let text = ''
          res.on('data', (chunk: string) => {
            text += chunk
          })
          res.on('end', () => finish(`${res.statusCode} ${text.slice(0, 200)}`))
          res.on('error', (error) => finish(`${res.statusCode} then ${error.message}`))
          return
        }
        const splitter = new EventSplitter()
        res.on('data', (chunk: string) => {
          const at = performance.now()
          let events: ReturnType<EventSplitter['push']>
          try {
            events = splitter.push(chunk)
          } catch (error) {
            run.failure = `unreadable event: ${(error as Error).message}`
            req.destroy()
            return
          }
          for (const event of events) {
            if (last === 'end' || last === 'error')
              run.failure = `${event === 'token' ? 'token' : event.event} after ${last}`
            if (event === 'token') {
              run.tokens++
              if (run.firstTokenMs === undefined) run.firstTokenMs = at - run.startedAt
              run.tokenAt.push(performance.timeOrigin + at)
              last = 'token'
              continue
            }
            last = event.event
            if (event.event === 'add_message' && run.firstMessageMs === undefined)
              run.firstMessageMs = at - run.startedAt
            if (event.event === 'end') run.reply = replyOf((event.data as { result?: unknown }).result)
            if (event.event === 'error') run.failure = `error event: ${JSON.stringify(event.data).slice(0, 200)}`
          }
        })
        res.on('end', () => finish(splitter.rest.trim() ? `bytes after the last event: ${splitter.rest}` : undefined))
        res.on('error', (error) => finish(`stream broke: ${error.message}`))
        res.on('aborted', () => finish('stream aborted'))
      },
    )
    const timer = setTimeout(() => {
      finish(`no end within ${opts.timeoutMs} ms`)
      req.destroy()
    }, opts.timeoutMs)
    req.on('error', (error: Error & { code?: string }) => finish(`request failed: ${error.code ?? error.message}`))
    req.end(body)
  })
}

/** The `ps`-th percentiles (0–100) of `values` (one sort, of a copy), nearest rank; NaN when empty. */
export function percentiles(values: ArrayLike<number>, ...ps: number[]): number[] {
  if (values.length === 0) return ps.map(() => Number.NaN)
  const sorted = Float64Array.from(values).sort()
  return ps.map(
    (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number,
  )
}

/** A growing list of numbers in a Float64Array (hundreds of thousands of gaps without an array of boxes). */
export class Samples {
  #values = new Float64Array(1024)
  #length = 0

  add(value: number): void {
    if (this.#length === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2)
      bigger.set(this.#values)
      this.#values = bigger
    }
    this.#values[this.#length++] = value
  }

  get length(): number {
    return this.#length
  }

  values(): Float64Array {
    return this.#values.subarray(0, this.#length)
  }

  /** Several percentiles at once (`percentiles`). */
  percentiles(...ps: number[]): number[] {
    return percentiles(this.values(), ...ps)
  }
}

/** What the token events of some runs say, over a window of time (epoch milliseconds). */
export interface TokenTimings {
  /** Token events that arrived in the window. */
  tokens: number
  /** Per token after a run's first (arrived in the window): the gap since the one before minus `intervalMs`. */
  addedGap: Samples
  /**
   * The same gap minus the model's own gap between writing those two words, instead of `intervalMs`: what the
   * stack (and the client's reading) added, without the model's lateness. Only runs whose write times are known.
   */
  stackGap: Samples
  /** Per token: arrival minus the model's write, milliseconds (the two processes' clocks, from one system clock). */
  latency: Samples
}

/**
 * Token timings of `runs` in `window`: from each run's arrival times (`tokenAt`) and, when `written` has the
 * run's input, when the model wrote each word (epoch milliseconds, word k ↔ token event k).
 */
export function tokenTimings(
  runs: readonly Pick<StreamRun, 'input' | 'tokenAt'>[],
  written: ReadonlyMap<string, readonly number[]>,
  window: { from: number; to: number },
  intervalMs: number,
): TokenTimings {
  const timings: TokenTimings = { tokens: 0, addedGap: new Samples(), stackGap: new Samples(), latency: new Samples() }
  for (const run of runs) {
    const sent = written.get(run.input)
    for (const [k, at] of run.tokenAt.entries()) {
      if (at < window.from || at > window.to) continue
      timings.tokens++
      const wrote = sent?.[k]
      if (wrote !== undefined) timings.latency.add(at - wrote)
      if (k === 0) continue
      const gap = at - (run.tokenAt[k - 1] as number)
      timings.addedGap.add(gap - intervalMs)
      const wroteBefore = sent?.[k - 1]
      if (wrote !== undefined && wroteBefore !== undefined) timings.stackGap.add(gap - (wrote - wroteBefore))
    }
  }
  return timings
}
