// Issue 11, defect 9: a body over a service's limit sent through the gateway is the gateway's own 413 in the
// envelope, for bodies that announce their length and for chunked ones, on every public route with a body; the
// service behind never receives it, nothing is stored, and the caller's connection stays usable. Through a real
// listening gateway (inject() has no framing): undici's Client keeps one keep-alive connection.
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import { loadConfig as loadRunServiceConfig } from '@session-runtime/run-service/config'
import t, { type Test } from 'tap'
import { Client } from 'undici'
import { loadConfig } from '../src/config.js'
import { INTERNAL_TOKEN, KEY_A, startStack } from './helpers/stack.js'

// On embedded PGlite (no TEST_DATABASE_URL) the stack takes seconds to boot.
t.setTimeout(240_000)

const MiB = 1024 * 1024
const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixtures}/${name}.json`, 'utf8'))

t.test("the gateway's limits default to the services' own", async (t) => {
  const gateway = loadConfig({ INTERNAL_TOKEN } as NodeJS.ProcessEnv)
  const runService = loadRunServiceConfig({ INTERNAL_TOKEN } as NodeJS.ProcessEnv)
  const store = loadMessageStoreConfig({ INTERNAL_TOKEN } as NodeJS.ProcessEnv)
  t.equal(gateway.RUN_BODY_LIMIT_BYTES, runService.RUN_BODY_LIMIT_BYTES)
  t.equal(gateway.FLOWS_BODY_LIMIT_BYTES, runService.FLOWS_BODY_LIMIT_BYTES)
  t.equal(gateway.BODY_LIMIT_BYTES, store.BODY_LIMIT_BYTES)
  t.ok(gateway.GATEWAY_BODY_LIMIT_BYTES >= gateway.FLOWS_BODY_LIMIT_BYTES, 'the edge cap leaves the largest one')
})

// every limit at its default: the run and monitor APIs 1 MiB, the flows API 8 MiB
const { gateway, seen, storeSeen } = await startStack(t)
await gateway.listen({ host: '127.0.0.1', port: 0 })
const client = new Client(`http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`, {
  pipelining: 1,
  keepAliveTimeout: 60_000,
})
t.teardown(() => client.close())
let connects = 0
client.on('connect', () => {
  connects += 1
})

type Framing = 'content-length' | 'chunked'
const FRAMINGS: Framing[] = ['content-length', 'chunked']

/** The body in 64 KiB chunks, with no length announced: undici sends it chunked. */
async function* chunksOf(body: Buffer) {
  for (let at = 0; at < body.length; at += 64 * 1024) yield body.subarray(at, at + 64 * 1024)
}

async function send(method: 'POST' | 'PUT', path: string, body: string, framing: Framing) {
  const bytes = Buffer.from(body)
  const res = await client.request({
    method,
    path,
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
    body: framing === 'content-length' ? bytes : Readable.from(chunksOf(bytes)),
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}

const get = async (path: string) => {
  const res = await client.request({ method: 'GET', path, headers: { 'x-api-key': KEY_A } })
  return { status: res.statusCode, json: (await res.body.json()) as unknown }
}

/** A JSON object of exactly `bytes` bytes: `fields` plus a padding tweak that no node has (ignored by a run). */
function padded(bytes: number, fields: Record<string, unknown>) {
  const shell = JSON.stringify({ ...fields, tweaks: { pad: '' } })
  return JSON.stringify({ ...fields, tweaks: { pad: 'x'.repeat(bytes - shell.length) } })
}

const tooLarge = (limit: number) => ({
  detail: `Request body is larger than the limit of ${limit} bytes`,
  code: 'GATEWAY_PAYLOAD_TOO_LARGE',
})

/**
 * The connection after a 413: a body that announced its length was refused before any of it was read, and the
 * rest is read and dropped, so the same connection answers the next request. A chunked body was refused part way
 * (Fastify's reader): its 413 says `connection: close` and the connection is closed once it is sent, since the
 * caller may still be sending; the caller's next request goes out on a new connection.
 */
async function nextRequestAnswered(
  t: Test,
  framing: Framing,
  res: { headers: Record<string, unknown> },
  before: number,
) {
  const next = await get('/api/v1/monitor/messages/sessions')
  t.equal(next.status, 200, 'the next request is answered')
  if (framing === 'content-length') {
    t.not(res.headers.connection, 'close', 'the connection stays open')
    t.equal(connects, before, 'the next request went on the same connection')
  } else {
    t.equal(res.headers.connection, 'close', 'the 413 announces that the connection closes')
    t.equal(connects, before + 1, 'the next request went on a new connection')
  }
}

const imported = await send(
  'POST',
  '/api/v1/flows/',
  JSON.stringify({ name: 'simple', data: fixture('langflow-simple-api-test').data }),
  'content-length',
)
t.equal(imported.status, 201, imported.text.slice(0, 200))
const flowId = imported.json().id as string
const runPath = `/api/v1/run/${flowId}`
const ran = (path: string) => seen.filter((headers) => headers.url === path).length

t.test('a run body over RUN_BODY_LIMIT_BYTES: 413 at the edge, both framings', async (t) => {
  for (const framing of FRAMINGS) {
    for (const size of [1.1e6, 2e6, 4e6, 6e6]) {
      const session = `edge-${framing}-${size}`
      const runsBefore = ran(runPath)
      const connectsBefore = connects
      const res = await send('POST', runPath, padded(size, { input_value: 'hi', session_id: session }), framing)
      t.equal(res.status, 413, `${size} bytes, ${framing}`)
      t.strictSame(res.json(), tooLarge(MiB))
      t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the edge answered, with its request ID')
      t.equal(ran(runPath), runsBefore, 'the run-service never received the request')
      const stored = await get(`/api/v1/monitor/messages?session_id=${session}`)
      t.strictSame(stored.json, [], 'nothing stored')
      await nextRequestAnswered(t, framing, res, connectsBefore)
    }
  }
})

t.test('a run body of exactly RUN_BODY_LIMIT_BYTES is forwarded and run, both framings', async (t) => {
  for (const framing of FRAMINGS) {
    const session = `at-limit-${framing}`
    const res = await send('POST', runPath, padded(MiB, { input_value: 'at the limit', session_id: session }), framing)
    t.equal(res.status, 200, res.text.slice(0, 200))
    t.equal(res.json().session_id, session)
    const stored = (await get(`/api/v1/monitor/messages?session_id=${session}`)).json as { text: string }[]
    t.ok(
      stored.some((m) => m.text === 'at the limit'),
      'the run stored its messages',
    )
  }
})

t.test('a monitor edit over BODY_LIMIT_BYTES: 413 at the edge, both framings', async (t) => {
  const messages = (await get(`/api/v1/monitor/messages?session_id=at-limit-chunked`)).json as {
    id: string
    text: string
  }[]
  const message = messages[0]
  if (!message) throw new Error('no message to edit')
  const path = `/api/v1/monitor/messages/${message.id}`
  for (const framing of FRAMINGS) {
    const storeBefore = storeSeen.filter((r) => r.method === 'PUT').length
    const connectsBefore = connects
    const res = await send('PUT', path, JSON.stringify({ text: 'y'.repeat(2e6) }), framing)
    t.equal(res.status, 413, framing)
    t.strictSame(res.json(), tooLarge(MiB))
    t.equal(storeSeen.filter((r) => r.method === 'PUT').length, storeBefore, 'the message-store never received it')
    await nextRequestAnswered(t, framing, res, connectsBefore)
  }
  const after = (await get(`/api/v1/monitor/messages?session_id=at-limit-chunked`)).json as typeof messages
  t.equal(after.find((m) => m.id === message.id)?.text, message.text, 'the message is unchanged')
  // just under the limit, the edit is forwarded and stored
  const edited = await send('PUT', path, JSON.stringify({ text: 'edited' }), 'chunked')
  t.equal(edited.status, 200, edited.text.slice(0, 200))
  t.equal(edited.json().text, 'edited')
})

t.test('a flow import over FLOWS_BODY_LIMIT_BYTES: 413 at the edge, both framings', async (t) => {
  const flowsBefore = (await get('/api/v1/flows/')).json as unknown[]
  for (const framing of FRAMINGS) {
    const imports = ran('/api/v1/flows/')
    const connectsBefore = connects
    const body = padded(9 * MiB, { name: `too-large-${framing}`, data: { nodes: [], edges: [] } })
    const res = await send('POST', '/api/v1/flows/', body, framing)
    t.equal(res.status, 413, framing)
    t.strictSame(res.json(), tooLarge(8 * MiB))
    t.equal(ran('/api/v1/flows/'), imports, 'the run-service never received it')
    await nextRequestAnswered(t, framing, res, connectsBefore)
  }
  t.equal(((await get('/api/v1/flows/')).json as unknown[]).length, flowsBefore.length, 'no flow imported')
})
