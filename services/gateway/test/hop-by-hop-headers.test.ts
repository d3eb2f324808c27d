// Found by the fuzz test (tests/fuzz/public-routes.test.ts): hop-by-hop headers of the caller's request
// (`Expect: 100-continue`, which curl sends for bodies over 1 KiB, `Keep-Alive`, `Upgrade`, `TE`, …) were
// forwarded to undici, which refuses them: every such request answered 502. They are now dropped.
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { KEY_A, startStack } from './helpers/stack.js'

const { gateway, seen } = await startStack(t)

const HOP_BY_HOP: Record<string, string> = {
  expect: '100-continue',
  'keep-alive': 'timeout=5',
  upgrade: 'websocket',
  te: 'trailers',
  'proxy-connection': 'keep-alive',
  trailer: 'x-checksum',
}

t.test('each hop-by-hop header reaches no service and fails no request', async (t) => {
  for (const [name, value] of Object.entries(HOP_BY_HOP)) {
    const before = seen.length
    const res = await gateway.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers: { 'x-api-key': KEY_A, [name]: value },
      payload: { name: `flow with ${name}`, data: { nodes: [], edges: [] } },
    })
    t.equal(res.statusCode, 201, `${name}: ${res.statusCode === 201 ? 'created' : res.body}`)
    t.equal(seen.at(-1)?.[name], undefined, `${name} is not forwarded`)
    t.equal(seen.length, before + 1)
  }
})

t.test('over HTTP: a client waiting for 100 Continue gets it, then its answer', async (t) => {
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const { port } = gateway.server.address() as AddressInfo
  const body = JSON.stringify({ name: 'curl-like', description: 'x'.repeat(2048), data: { nodes: [], edges: [] } })
  const answer = await new Promise<{ status: number; continued: boolean; body: string }>((resolve, reject) => {
    let continued = false
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v1/flows/',
      headers: { 'x-api-key': KEY_A, 'content-type': 'application/json', expect: '100-continue' },
    })
    req.on('continue', () => {
      continued = true
      req.end(body)
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, continued, body: text }))
    })
    req.on('error', reject)
  })
  t.ok(answer.continued, 'the gateway sent 100 Continue')
  t.equal(answer.status, 201, answer.status === 201 ? 'created' : answer.body)
  t.equal((JSON.parse(answer.body) as { name: string }).name, 'curl-like')
})
