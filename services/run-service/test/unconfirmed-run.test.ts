// A run whose reply write commits in the message-store but whose answer is lost (the connection drops after
// the store answered, on every retry) answers 503. Its reply must not stay stored as a complete message:
// the run-service settles it as failed once the store answers again, so it is marked in the monitor and
// left out of the next run's Memory. Real run-service and message-store; a proxy between them loses answers.
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildTestApp, internalHeaders, startMessageStore, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

type Mode = 'pass' | 'lose-replies' | 'refuse'

/** Forwards to the message-store; `lose-replies` drops the answer to a stored Machine message, `refuse` all. */
async function lossyProxy(target: string) {
  const proxy = { mode: 'pass' as Mode, lost: 0, url: '' }
  const server = createServer(async (req, res) => {
    const body = await read(req)
    if (proxy.mode === 'refuse') {
      req.socket.destroy()
      return
    }
    const upstream = await fetch(target + req.url, {
      method: req.method,
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
      ) as Record<string, string>,
      ...(body.length > 0 ? { body } : {}),
    })
    const text = await upstream.text()
    const lose =
      proxy.mode === 'lose-replies' &&
      req.url === '/internal/messages' &&
      (JSON.parse(body.toString()) as { sender?: string }).sender === 'Machine'
    if (lose) {
      proxy.lost++
      req.socket.destroy()
      return
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' })
    res.end(text)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  server.on('connection', (socket) => t.teardown(() => socket.destroy()))
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return proxy
}

async function read(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

interface Stored {
  id: string
  sender: string
  category: string
  text: string
  error: boolean
  properties: { state?: string }
}

const store = await startMessageStore(t)
const proxy = await lossyProxy(store.url)
const app = await buildTestApp(t, {
  messageStoreUrl: proxy.url,
  env: { UNCONFIRMED_SETTLE_INTERVAL_MS: '50' },
})

const run = (session_id: string, input_value: string) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/run/memory-echo',
    headers: internalHeaders(),
    payload: { input_value, session_id },
  })

async function flowId(): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders() })
  const id = (res.json() as { id: string; endpoint_name: string }[]).find((f) => f.endpoint_name === 'memory-echo')?.id
  if (!id) throw new Error('no Memory Echo flow')
  return id
}

async function stored(flow_id: string, session_id: string): Promise<Stored[]> {
  const res = await store.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(),
    query: { flow_id, session_id },
  })
  return res.json() as Stored[]
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`${what}: not in 10 s (last: ${JSON.stringify(value)})`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const metric = async (outcome: string) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  return Number(new RegExp(`^unconfirmed_messages_total\\{outcome="${outcome}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1])
}

/** Waits until every write recorded as unconfirmed since `before` has been settled. */
async function allSettled(before: { recorded: number; settled: number }) {
  return until(
    'every unconfirmed write settled',
    async () => ({ recorded: await metric('recorded'), settled: await metric('settled') }),
    (now) => now.recorded > before.recorded && now.settled - before.settled === now.recorded - before.recorded,
  )
}

const counts = async () => ({ recorded: await metric('recorded'), settled: await metric('settled') })

t.test('a reply committed with its answer lost is settled as failed', async (t) => {
  const flow = await flowId()
  const before = await counts()
  proxy.mode = 'lose-replies'
  const failed = await run('lost-answer', 'first question')
  t.equal(failed.statusCode, 503, failed.body)
  t.equal(failed.json().code, 'RUNSVC_MESSAGE_STORE_UNAVAILABLE')
  t.equal(proxy.lost, 6, "the reply and the run's error message each sent three times, every answer lost")
  proxy.mode = 'pass'

  const after = await allSettled(before)
  t.equal(after.recorded - before.recorded, 2, 'two writes recorded as unconfirmed: the reply, the error message')
  t.same(
    (await stored(flow, 'lost-answer')).map((m) => [m.sender, m.category, m.error, m.properties.state]),
    [
      ['User', 'message', false, 'complete'],
      ['Machine', 'message', true, 'partial'],
      ['Machine', 'error', true, 'complete'],
    ],
    'the user message stays; the reply, stored once, is marked failed; the error message is kept as it was',
  )

  const next = await run('lost-answer', 'second question')
  t.equal(next.statusCode, 200, next.body)
  const reply = JSON.stringify(next.json())
  t.match(reply, /first question/, "the next run's Memory has the first question")
  t.notMatch(reply, /You said: first question/, "but not the failed run's reply")
})

t.test('writes that never reached the store are stored failed once it is back', async (t) => {
  const flow = await flowId()
  const before = await counts()
  proxy.mode = 'refuse'
  const failed = await run('store-down', 'asked while the store was down')
  t.equal(failed.statusCode, 503, failed.body)
  t.equal((await stored(flow, 'store-down')).length, 0, 'nothing stored while it is down')
  proxy.mode = 'pass'
  await allSettled(before)
  t.same(
    (await stored(flow, 'store-down')).map((m) => [m.sender, m.category, m.error, m.properties.state]),
    [
      ['User', 'message', true, 'partial'],
      ['Machine', 'error', true, 'complete'],
    ],
    "the run stopped at its first write: that message is stored failed, beside the run's error message",
  )
  const next = await run('store-down', 'after the outage')
  t.equal(next.statusCode, 200)
  t.notMatch(JSON.stringify(next.json()), /asked while the store was down/, 'a failed message is not remembered')
})
