// A fake OpenAI-compatible model for the tests and benchmarks: `POST /v1/chat/completions` on 127.0.0.1 (real
// HTTP), answering as one JSON completion or as SSE chunks (one per word, then `[DONE]`), at once or at an LLM's
// pace (`chunkIntervalMs`), with OpenAI's `usage` (fakeUsage; streamed: a last chunk when asked for with
// `stream_options.include_usage`). It records every call, and can fail, hang, or hold its replies until the test
// releases them.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './child.js'

/** `ok`: answers; `fail`: answers 500 with an error envelope; `hang`: never answers. */
export type FakeModelMode = 'ok' | 'fail' | 'hang'

export interface ChatMessage {
  role: string
  content: string
}

export interface ChatCall {
  model: string
  stream: boolean
  system: string | undefined
  /** The last user message. */
  user: string
  authorization: string | undefined
  messages: ChatMessage[]
  /** `stream_options.include_usage`: a streamed reply ends with a usage chunk. */
  includeUsage: boolean
}

export interface FakeModelOptions {
  /** The reply to a call; default `fakeReply(call.user)`. */
  reply?: (call: ChatCall) => string
  /** A call it gives an error message for fails (500) with that message, as in mode `fail` (some providers put the prompt there). */
  failure?: (call: ChatCall) => string | undefined
  /**
   * A streamed reply's pace: milliseconds between two word chunks (the first word goes at once). Chunk k is
   * due `k × chunkIntervalMs` after the first (after `release()` when held), so a late timer does not push back
   * the chunks after it.
   * Default 0: every chunk at once.
   */
  chunkIntervalMs?: number
  /** Whether `calls` keeps every call; default true (a benchmark's hundreds of thousands: false). */
  recordCalls?: boolean
  /** Told as each word of a streamed reply is written: its index (from 0) and when (performance.now()). */
  onChunk?: (call: ChatCall, word: number, at: number) => void
}

export interface FakeModel {
  /** Base URL to configure (OPENAI_BASE_URL), ending in `/v1`. */
  url: string
  mode: FakeModelMode
  calls: ChatCall[]
  /** Calls in `hang` mode whose connection the caller closed. */
  abandoned: number
  /**
   * Holds the next replies until `release()`: a streamed one after its first word (so the test sees a token
   * arrive while the run goes on), any other before it answers.
   */
  hold(): void
  release(): void
}

/** Words (runs of non-spaces) in a text: the fake model's "tokens". */
const words = (text: string) => text.split(/\s+/).filter((word) => word !== '').length

/**
 * The usage the fake model reports for a call and its reply, in OpenAI's names: a token per word of every
 * message (prompt) and of the reply (completion).
 */
export function fakeUsage(call: Pick<ChatCall, 'messages'>, reply: string) {
  const prompt_tokens = call.messages.reduce((sum, message) => sum + words(message.content), 0)
  const completion_tokens = words(reply)
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
}

/** The reply the fake model gives by default: derived from the request, so tests can tell which request it answered. */
export function fakeReply(user: string): string {
  return `You said: ${user}`
}

const FAILED = 'the fake model is broken'

async function readCall(req: IncomingMessage): Promise<ChatCall> {
  let text = ''
  for await (const chunk of req) text += chunk
  const body = JSON.parse(text) as {
    model: string
    stream?: boolean
    messages: ChatMessage[]
    stream_options?: { include_usage?: boolean }
  }
  return {
    model: body.model,
    stream: body.stream === true,
    system: body.messages.find((m) => m.role === 'system')?.content,
    user: body.messages.filter((m) => m.role === 'user').at(-1)?.content ?? '',
    authorization: req.headers.authorization,
    messages: body.messages,
    includeUsage: body.stream_options?.include_usage === true,
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Starts the fake model; it is closed (every connection cut, held replies released) when `t` ends. */
export async function startFakeModel(t: Teardown, opts: FakeModelOptions = {}): Promise<FakeModel> {
  let gate = Promise.resolve()
  let release = () => {}
  const fake: FakeModel = {
    url: '',
    mode: 'ok',
    calls: [],
    abandoned: 0,
    hold() {
      gate = new Promise<void>((resolve) => {
        release = resolve
      })
    },
    release: () => release(),
  }
  const server = createServer(async (req, res) => {
    const call = await readCall(req)
    if (opts.recordCalls !== false) fake.calls.push(call)
    const failure = fake.mode === 'fail' ? FAILED : opts.failure?.(call)
    if (failure !== undefined) return sendJson(res, 500, { error: { message: failure, type: 'server_error' } })
    if (fake.mode === 'hang') {
      res.on('close', () => fake.abandoned++)
      return
    }
    const reply = opts.reply?.(call) ?? fakeReply(call.user)
    const usage = fakeUsage(call, reply)
    const words = reply.split(/(?<= )/)
    const base = { id: 'chatcmpl-fake', created: 1, model: call.model }
    if (!call.stream) {
      await gate
      const message = { role: 'assistant', content: words.join('') }
      return sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message, finish_reason: 'stop' }],
        usage,
      })
    }
    const chunk = (delta: Record<string, string>, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk({ role: 'assistant', content: '' }))
    res.write(chunk({ content: words[0] ?? '' }))
    opts.onChunk?.(call, 0, performance.now())
    await gate
    const interval = opts.chunkIntervalMs ?? 0
    const first = performance.now()
    for (const [k, word] of words.entries()) {
      if (k === 0) continue
      if (interval > 0) await sleep(first + k * interval - performance.now())
      if (res.destroyed) return
      res.write(chunk({ content: word }))
      opts.onChunk?.(call, k, performance.now())
    }
    if (res.destroyed) return
    res.write(chunk({}, 'stop'))
    // as OpenAI does: the usage in one more chunk, without choices, when asked for
    if (call.includeUsage) {
      res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage })}\n\n`)
    }
    res.end('data: [DONE]\n\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    release()
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return fake
}
