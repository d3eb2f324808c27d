// The model port (src/ports/openai-model.ts) against real HTTP servers: the fake OpenAI-compatible model of
// @session-runtime/stack, and plain node:http servers that answer exactly what a test needs. A streamed call
// goes through src/ports/chat-stream.ts (undici), an unstreamed one through the openai SDK: both must fail
// the same way for the same answer.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fakeReply, freePort, startFakeModel, waitFor } from '@session-runtime/stack'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { type CompletionRequest, ModelProviderError } from '../src/engine/index.js'
import { ServerSentEvents } from '../src/ports/chat-stream.js'
import { createOpenAIModelPort } from '../src/ports/openai-model.js'

function port(t: Test, timeoutMs = 5_000) {
  const model = createOpenAIModelPort({ timeoutMs })
  t.teardown(() => model.close())
  return model
}

const ask = (baseUrl: string, extra: Partial<CompletionRequest> = {}): CompletionRequest => ({
  model: 'm',
  baseUrl,
  apiKey: 'sk-test',
  system: 'be brief',
  input: 'hi there',
  temperature: 0.3,
  stream: true,
  ...extra,
})

const never = () => new AbortController().signal

/** A server answering every request with `answer`; counts the connections it accepted. */
async function server(t: Test, answer: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const state = { connections: 0 }
  const srv = createServer(async (req, res) => {
    let body = ''
    for await (const chunk of req) body += chunk
    answer(req, res, body)
  })
  srv.on('connection', () => state.connections++)
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    srv.closeAllConnections()
    srv.close()
  })
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1`, state }
}

const sse = (data: unknown) => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`
const delta = (content: string) => sse({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })

/** The error a call rejects with (fails the test if it resolves). */
async function failure(call: Promise<unknown>): Promise<ModelProviderError> {
  try {
    await call
  } catch (error) {
    return error as ModelProviderError
  }
  throw new Error('the call did not fail')
}

t.test('a streamed completion: each piece as it comes, the whole reply, the request as the SDK sends it', async (t) => {
  const model = await startFakeModel(t)
  const pieces: string[] = []
  const result = await port(t).complete(ask(model.url, { maxTokens: 50, onToken: (piece) => pieces.push(piece) }), {
    signal: never(),
  })
  t.equal(result.text, fakeReply('hi there'))
  t.same(pieces, ['You ', 'said: ', 'hi ', 'there'])
  t.match(model.calls, [
    { model: 'm', stream: true, system: 'be brief', user: 'hi there', authorization: 'Bearer sk-test' },
  ])
  const unstreamed = await port(t).complete(ask(model.url, { stream: false }), { signal: never() })
  t.equal(unstreamed.text, result.text, 'the same reply unstreamed')
})

t.test('streamed calls reuse keep-alive connections', async (t) => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(`${delta('a')}${delta('b')}${sse('[DONE]')}`)
    // the body ends a moment after [DONE]: a call that stopped reading there would cut the connection
    setTimeout(() => res.end(), 10)
  })
  const model = port(t)
  for (let i = 0; i < 6; i++) t.equal((await model.complete(ask(srv.url), { signal: never() })).text, 'ab')
  // (the next call may be sent before the last response has freed its connection: not always one)
  t.ok(srv.state.connections <= 2, `6 calls, ${srv.state.connections} connections`)
})

t.test('a status error fails a streamed call as it fails an unstreamed one', async (t) => {
  const model = await startFakeModel(t)
  model.mode = 'fail'
  const streamed = await failure(port(t).complete(ask(model.url), { signal: never() }))
  const unstreamed = await failure(port(t).complete(ask(model.url, { stream: false }), { signal: never() }))
  t.type(streamed, ModelProviderError)
  t.equal(streamed.message, 'the model provider failed: 500 the fake model is broken')
  t.equal(streamed.message, unstreamed.message)
  t.type(streamed.cause, OpenAI.InternalServerError)
  t.equal((streamed.cause as object).constructor, (unstreamed.cause as object).constructor)

  const limited = await server(t, (_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'x-request-id': 'req-1' })
    res.end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit', code: 'too_many' } }))
  })
  for (const stream of [true, false]) {
    const error = await failure(port(t).complete(ask(limited.url, { stream }), { signal: never() }))
    t.equal(error.message, 'the model provider failed: 429 slow down', `stream: ${stream}`)
    t.match(error.cause, { status: 429, type: 'rate_limit', code: 'too_many', requestID: 'req-1' })
  }

  const plain = await server(t, (_req, res) => {
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end('bad gateway upstream')
  })
  const messages = await Promise.all(
    [true, false].map(
      async (stream) => (await failure(port(t).complete(ask(plain.url, { stream }), { signal: never() }))).message,
    ),
  )
  t.same(messages, [
    'the model provider failed: 502 bad gateway upstream',
    'the model provider failed: 502 bad gateway upstream',
  ])
})

t.test('no server: cannot be reached, streamed or not', async (t) => {
  const url = `http://127.0.0.1:${await freePort()}/v1`
  for (const stream of [true, false]) {
    const error = await failure(port(t).complete(ask(url, { stream }), { signal: never() }))
    t.equal(error.message, 'the model provider cannot be reached: Connection error.', `stream: ${stream}`)
    t.type(error.cause, OpenAI.APIConnectionError)
  }
})

t.test('an error in the stream fails the call after the pieces before it', async (t) => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(`${delta('half ')}${sse({ error: { message: 'overloaded', type: 'server_error' } })}${delta('never')}`)
  })
  const pieces: string[] = []
  const error = await failure(port(t).complete(ask(srv.url, { onToken: (p) => pieces.push(p) }), { signal: never() }))
  t.same(pieces, ['half '])
  t.equal(error.message, 'the model provider failed: overloaded')
  t.match(error.cause, { type: 'server_error' })
})

t.test('a stream slower than the timeout fails as a timeout; a cancelled run aborts the call', async (t) => {
  const model = await startFakeModel(t)
  model.mode = 'hang'
  const slow = await failure(port(t, 300).complete(ask(model.url), { signal: never() }))
  t.equal(slow.message, 'the model provider did not answer within 300 ms')
  t.equal(slow.timeout, true)

  model.mode = 'ok'
  model.hold() // the first word, then nothing until released
  const cancel = new AbortController()
  const reason = new Error('the client closed the connection')
  const pieces: string[] = []
  const call = failure(port(t).complete(ask(model.url, { onToken: (p) => pieces.push(p) }), { signal: cancel.signal }))
  await waitFor(() => pieces.length === 1, 'the first piece')
  cancel.abort(reason)
  t.equal(await call, reason, "rejects with the run's reason")
  model.release()
})

t.test('the reply is whole however the bytes are cut', async (t) => {
  const text = 'héllo wörld — 日本語 🙂'
  const body = `: a comment\r\n${delta(text).replace(/\n/g, '\r\n')}event: message\n${delta('!')}id: 3\nretry: 10\n\n${sse('[DONE]')}`
  const bytes = Buffer.from(body)
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const srv = await server(t, async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (let at = 0; at < bytes.length; at += size) {
        res.write(bytes.subarray(at, at + size))
        await new Promise((resolve) => setImmediate(resolve))
      }
      res.end()
    })
    t.equal((await port(t).complete(ask(srv.url), { signal: never() })).text, `${text}!`, `pieces of ${size} bytes`)
  }
})

t.test('ServerSentEvents: fields, blank lines, LF or CRLF, data on several lines', async (t) => {
  const events = new ServerSentEvents()
  t.same(events.push('data: a\n'), [], 'not before the blank line')
  t.same(events.push('\n'), [{ event: undefined, data: 'a' }])
  t.same(events.push('event: error\r\ndata:{"x":1}\r\ndata:  two\r\n\r\n'), [{ event: 'error', data: '{"x":1}\n two' }])
  t.same(events.push(':comment\n\nid: 1\n\ndata\n\n'), [{ event: undefined, data: '' }], 'a field without a colon')
  t.same(events.push('data: x\n\ndata: y\n\n'), [
    { event: undefined, data: 'x' },
    { event: undefined, data: 'y' },
  ])
})
