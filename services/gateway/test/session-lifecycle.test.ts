import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { KEY_A, KEY_B, startStack } from './helpers/stack.js'

/**
 * Session metadata, export and erase (issue 14) through the gateway: a run's `session_metadata`, the PATCH,
 * the list filter, the NDJSON export streamed through the proxy, the erase; tenant B never reaches A's.
 */

// a stack and an export of 20,000 messages: past tap's default 30 s on embedded PGlite on a busy machine
t.setTimeout(300_000)

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const simpleFlow = () => JSON.parse(readFileSync(`${fixtures}/langflow-simple-api-test.json`, 'utf8'))

const { gateway, store } = await startStack(t)
const as = (key: string) => (opts: InjectOptions) =>
  gateway.inject({ ...opts, headers: { 'x-api-key': key, ...opts.headers } })
const asA = as(KEY_A)
const asB = as(KEY_B)

const flowA = ((await asA({ method: 'POST', url: '/api/v1/flows/', payload: simpleFlow() })).json() as { id: string })
  .id

interface Summary {
  session_id: string
  flow_id: string
  message_count: number
  metadata: Record<string, string>
}
const ndjson = (body: string) =>
  body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { session?: Summary; text?: string })

t.test("a run's session_metadata, the PATCH and the filtered list, through the gateway", async (t) => {
  const run = await asA({
    method: 'POST',
    url: `/api/v1/run/${flowA}`,
    payload: { input_value: 'hello', session_id: 'alice', session_metadata: { user_id: 'u-1' } },
  })
  t.equal(run.statusCode, 200, run.body)
  const bad = await asA({
    method: 'POST',
    url: `/api/v1/run/${flowA}`,
    payload: { input_value: 'hello', session_id: 'x', session_metadata: { 'bad key': 'v' } },
  })
  t.equal(bad.statusCode, 422)

  const patched = await asA({
    method: 'PATCH',
    url: `/api/v1/monitor/sessions/alice?flow_id=${flowA}`,
    payload: { metadata: { plan: 'pro' } },
  })
  t.equal(patched.statusCode, 200, patched.body)
  t.match(patched.json(), { session_id: 'alice', message_count: 2, metadata: { user_id: 'u-1', plan: 'pro' } })

  const listed = await asA({ url: '/api/v1/monitor/sessions?metadata.user_id=u-1&metadata.plan=pro' })
  t.same(
    (listed.json() as Summary[]).map((s) => s.session_id),
    ['alice'],
  )
  t.equal((await asA({ url: '/api/v1/monitor/sessions?metadata.a%20b=1' })).statusCode, 400)

  // B: nothing of A's is listed, patched or exported
  t.same((await asB({ url: '/api/v1/monitor/sessions?metadata.user_id=u-1' })).json(), [])
  const foreignPatch = await asB({
    method: 'PATCH',
    url: `/api/v1/monitor/sessions/alice?flow_id=${flowA}`,
    payload: { metadata: { plan: 'stolen' } },
  })
  t.equal(foreignPatch.statusCode, 404)
  t.equal((await asB({ url: `/api/v1/monitor/sessions/alice/export?flow_id=${flowA}` })).statusCode, 404)
  t.equal((await asB({ url: '/api/v1/monitor/sessions/export?metadata.user_id=u-1' })).body, '')
  t.same((await asB({ method: 'DELETE', url: '/api/v1/monitor/sessions?metadata.user_id=u-1' })).json(), {
    deleted_sessions: 0,
    deleted_messages: 0,
  })

  const exported = await asA({ url: `/api/v1/monitor/sessions/alice/export?flow_id=${flowA}` })
  t.equal(exported.statusCode, 200)
  t.match(exported.headers['content-type'], /^application\/x-ndjson/)
  const lines = ndjson(exported.body)
  t.match(lines[0], { session: { session_id: 'alice', metadata: { user_id: 'u-1', plan: 'pro' } } })
  t.equal(lines.length, 3, 'the summary, then the two messages of the run')
  t.equal((await asA({ url: '/api/v1/monitor/sessions/export' })).statusCode, 400, 'export needs a filter')
})

t.test('a large export streams through the gateway as the message-store writes it', async (t) => {
  // seeded in the store's database: 20,000 messages of ~1 kB
  await store.db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text, ts)
     SELECT md5('gw' || i)::uuid, 'tenant-a', $1, 'big', 'User', 'User', lpad(i::text, 6, '0') || repeat('z', 1000),
       timestamptz '2026-01-01' + i * interval '1 millisecond'
     FROM generate_series(1, 20000) AS i`,
    [flowA],
  )
  await store.db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version, metadata)
     SELECT 'tenant-a', $1, 'big', count(*), min(ts), max(ts), 'z', nextval('session_version_seq'), '{"user_id":"big"}'
     FROM messages WHERE tenant_id = 'tenant-a' AND flow_id = $1 AND session_id = 'big'`,
    [flowA],
  )
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const port = (gateway.server.address() as AddressInfo).port
  const result = await new Promise<{
    headers: Record<string, unknown>
    chunks: number
    lines: number
    ordered: boolean
  }>((resolve, reject) => {
    const req = request(
      `http://127.0.0.1:${port}/api/v1/monitor/sessions/export?metadata.user_id=big`,
      { headers: { 'x-api-key': KEY_A } },
      (res) => {
        let chunks = 0
        let rest = ''
        let lines = 0
        let ordered = true
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          chunks++
          const parts = (rest + chunk).split('\n')
          rest = parts.pop() ?? ''
          for (const part of parts) {
            if (lines > 0 && !part.includes(`"text":"${String(lines).padStart(6, '0')}z`)) ordered = false
            lines++
          }
        })
        res.on('end', () => resolve({ headers: res.headers, chunks, lines, ordered }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
  t.match(result.headers['content-type'], /^application\/x-ndjson/)
  t.notOk(result.headers['content-length'], 'not buffered into one body: no length known in advance')
  t.equal(result.headers['transfer-encoding'], 'chunked')
  t.ok(result.chunks > 10, `arrived in ${result.chunks} chunks`)
  t.equal(result.lines, 20_001)
  t.ok(result.ordered, 'oldest first')
})

t.test('erase through the gateway; B cannot erase A', async (t) => {
  t.same((await asA({ method: 'DELETE', url: '/api/v1/monitor/sessions' })).statusCode, 400)
  const erased = await asA({ method: 'DELETE', url: '/api/v1/monitor/sessions?metadata.user_id=u-1' })
  t.equal(erased.statusCode, 200, erased.body)
  t.same(erased.json(), { deleted_sessions: 1, deleted_messages: 2 })
  t.same((await asA({ url: `/api/v1/monitor/messages?flow_id=${flowA}&session_id=alice` })).json(), [])
})

t.test('the routes are in the merged OpenAPI document', async (t) => {
  const doc = (await gateway.inject({ url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>
  }
  t.ok(doc.paths['/api/v1/monitor/sessions/{session_id}']?.patch)
  t.ok(
    doc.paths['/api/v1/monitor/sessions/{session_id}/export']?.get?.responses['200']?.content?.['application/x-ndjson'],
  )
  t.ok(doc.paths['/api/v1/monitor/sessions/export']?.get)
  t.ok(doc.paths['/api/v1/monitor/sessions']?.delete)
  t.ok(doc.paths['/api/v1/monitor/sessions']?.get)
})
