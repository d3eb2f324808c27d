import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import type { Test } from 'tap'

export type FakeOpenAIMode = 'ok' | 'fail' | 'hang'

export interface ChatCall {
  model: string
  stream: boolean
  system: string | undefined
  user: string
  authorization: string | undefined
}

export interface FakeOpenAI {
  /** Base URL to configure, ending in `/v1`. */
  url: string
  mode: FakeOpenAIMode
  calls: ChatCall[]
  /** Calls in `hang` mode whose connection the caller closed. */
  abandoned: number
}

/** The reply the fake model gives: derived from the request, so tests can tell which request it answered. */
export function fakeReply(user: string): string {
  return `You said: ${user}`
}

interface ChatBody {
  model: string
  stream?: boolean
  messages: { role: string; content: string }[]
}

/**
 * An OpenAI-compatible chat-completions server on 127.0.0.1 (real HTTP): answers `fakeReply(<user
 * message>)`, as one JSON completion or as SSE chunks (one per word, then `[DONE]`). Mode `fail` answers
 * 500, `hang` never answers. Every call is recorded.
 */
export async function startFakeOpenAI(t: Test): Promise<FakeOpenAI> {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const fake: FakeOpenAI = { url: '', mode: 'ok', calls: [], abandoned: 0 }
  app.post<{ Body: ChatBody }>('/v1/chat/completions', async (request, reply) => {
    const body = request.body
    const user = body.messages.filter((m) => m.role === 'user').at(-1)?.content ?? ''
    fake.calls.push({
      model: body.model,
      stream: body.stream === true,
      system: body.messages.find((m) => m.role === 'system')?.content,
      user,
      authorization: request.headers.authorization,
    })
    if (fake.mode === 'fail') {
      return reply.code(500).send({ error: { message: 'the fake model is broken', type: 'server_error' } })
    }
    if (fake.mode === 'hang') {
      reply.raw.on('close', () => fake.abandoned++)
      return new Promise(() => {})
    }
    const text = fakeReply(user)
    const base = { id: 'chatcmpl-fake', created: 1, model: body.model }
    if (!body.stream) {
      return {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      }
    }
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: Record<string, string>, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    reply.raw.write(chunk({ role: 'assistant', content: '' }))
    for (const piece of text.split(/(?<= )/)) reply.raw.write(chunk({ content: piece }))
    reply.raw.write(chunk({}, 'stop'))
    reply.raw.end('data: [DONE]\n\n')
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  fake.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1`
  return fake
}
