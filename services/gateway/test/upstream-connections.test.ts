// How many requests the gateway has in flight to one instance of a service at once (UPSTREAM_CONNECTIONS): a
// streamed run holds its connection for as long as its model streams, so a small cap would queue every stream
// beyond it in the gateway until another one ends. A plain node:http server stands in for the run-service and
// holds every stream open (its first event written) until the test lets them end.
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { waitFor } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'

const KEY = 'key-a-0123456789'
const event = (name: string, data: unknown) => `${JSON.stringify({ event: name, data })}\n\n`

/** The stand-in run-service: each streamed run writes one token event, then waits for `endAll()`. */
async function holdingUpstream(t: Test) {
  const open = new Set<ServerResponse>()
  const state = { open: 0, most: 0, released: false }
  const server = createServer(async (req, res) => {
    for await (const _ of req) {
      // the body is read before answering
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' })
    res.write(event('token', { chunk: 'Hello', id: 'm1' }))
    if (state.released) return void res.end(event('end', { result: {} }))
    open.add(res)
    state.open = open.size
    state.most = Math.max(state.most, open.size)
    res.once('close', () => {
      open.delete(res)
      state.open = open.size
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const endAll = () => {
    for (const res of open) res.end(event('end', { result: {} }))
    open.clear()
    state.open = 0
  }
  /** Ends every stream, those still to come too (after a failed check: the test ends at once). */
  const releaseAll = () => {
    state.released = true
    endAll()
  }
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state, endAll, releaseAll }
}

async function gatewayFor(t: Test, upstreamUrl: string, env: Record<string, string> = {}) {
  const gateway = await buildApp(
    loadConfig({
      LOG_LEVEL: 'warn',
      INTERNAL_TOKEN: 'test-internal-token-0123456789',
      API_KEYS: `a=${KEY}`,
      RUN_SERVICE_URL: upstreamUrl,
      MESSAGE_STORE_URL: 'http://127.0.0.1:1',
      ...env,
    } as NodeJS.ProcessEnv),
    { keys: parseApiKeys(`a=${KEY}`), logStream: { write: () => {} } },
  )
  t.teardown(() => gateway.close())
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`
}

/** `count` streamed runs through the gateway at once; each resolves with the text the client got. */
function streams(gatewayUrl: string, count: number): Promise<string>[] {
  return Array.from({ length: count }, async (_, i) => {
    const res = await fetch(`${gatewayUrl}/api/v1/run/flow?stream=true`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ input_value: `run ${i}` }),
      signal: AbortSignal.timeout(30_000),
    })
    return res.text()
  })
}

const COMPLETE = `${event('token', { chunk: 'Hello', id: 'm1' })}${event('end', { result: {} })}`

t.test('by default, 300 streamed runs are all in flight to one run-service instance at once', async (t) => {
  const upstream = await holdingUpstream(t)
  const gatewayUrl = await gatewayFor(t, upstream.url)
  const runs = streams(gatewayUrl, 300)
  try {
    await waitFor(() => upstream.state.open === 300, '300 streams open at the run-service at once', 20_000)
  } finally {
    t.comment(`at most ${upstream.state.most} at once`)
    upstream.releaseAll()
  }
  const texts = await Promise.all(runs)
  t.equal(texts.filter((text) => text === COMPLETE).length, 300, 'every stream ended with its end event')
})

t.test('UPSTREAM_CONNECTIONS bounds the requests in flight to an instance; the others wait, then pass', async (t) => {
  const upstream = await holdingUpstream(t)
  const gatewayUrl = await gatewayFor(t, upstream.url, { UPSTREAM_CONNECTIONS: '4' })
  const runs = streams(gatewayUrl, 10)
  t.teardown(upstream.releaseAll)
  await waitFor(() => upstream.state.open === 4, 'four streams open at the run-service')
  // the others wait in the gateway: give them time to (wrongly) arrive
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(upstream.state.open, 4, 'no fifth one')
  const texts: string[] = []
  for (const run of runs) void run.then((text) => texts.push(text))
  while (texts.length < 10) {
    upstream.endAll()
    await waitFor(() => upstream.state.open > 0 || texts.length === 10, 'the next streams to arrive', 10_000, 5)
  }
  t.equal(upstream.state.most, 4, 'never more than four at once')
  t.equal(texts.filter((text) => text === COMPLETE).length, 10, 'every stream ended with its end event')
})

t.test('UPSTREAM_CONNECTIONS must be a count of at least one', async (t) => {
  const env = { INTERNAL_TOKEN: 'test-internal-token-0123456789' }
  t.equal(loadConfig(env as NodeJS.ProcessEnv).UPSTREAM_CONNECTIONS, 4096)
  t.throws(() => loadConfig({ ...env, UPSTREAM_CONNECTIONS: '0' } as NodeJS.ProcessEnv), /UPSTREAM_CONNECTIONS/)
})
