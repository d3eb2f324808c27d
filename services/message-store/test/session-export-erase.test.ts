import { randomBytes, randomUUID } from 'node:crypto'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)
// a 100,000-message session is seeded and exported: past tap's default 30 s on a busy machine
t.setTimeout(600_000)

// The seeds below insert up to 100,000 long messages in one statement; with the search indexes (migration 005)
// that takes longer than the service's 10 s statement timeout on a busy machine.
const app = await buildTestApp(t, { env: { DATABASE_STATEMENT_TIMEOUT_MS: '300000' } })
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

interface Line {
  session?: { session_id: string; flow_id: string; message_count: number; metadata: Record<string, string> }
  id?: string
  text?: string
  session_id?: string
  timestamp?: string
}

const exportUrl = (sessionId: string, flowId: string) =>
  `/api/v1/monitor/sessions/${encodeURIComponent(sessionId)}/export?flow_id=${flowId}`

/** An export through inject (small ones): status, content type and parsed lines. */
async function exported(tenant: string, url: string) {
  const res = await app.inject({ method: 'GET', url, headers: internalHeaders(tenant) })
  const lines =
    res.statusCode === 200
      ? res.body
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Line)
      : []
  return { status: res.statusCode, type: String(res.headers['content-type']), lines, body: res.body }
}

async function storeSession(tenant: string, flowId: string, sessionId: string, texts: string[], meta?: object) {
  const inputs = texts.map((text, i) =>
    messageInput({
      flow_id: flowId,
      session_id: sessionId,
      text,
      ...(i === 0 && meta ? { session_metadata: meta } : {}),
    }),
  )
  // one request per message: storage order is timestamp order
  const out = []
  for (const input of inputs) out.push(...(await store(app, tenant, [input])))
  return out
}

t.test('export of one session: summary line, then its messages oldest first, in the monitor shape', async (t) => {
  const flow = randomUUID()
  const stored = await storeSession(A, flow, 's 1/é', ['one', 'two', 'three'], { user_id: 'u-1' })
  await storeSession(A, flow, 'other', ['x'])
  const { status, type, lines } = await exported(A, exportUrl('s 1/é', flow))
  t.equal(status, 200)
  t.match(type, /^application\/x-ndjson/)
  t.equal(lines.length, 4)
  t.match(lines[0], {
    session: { session_id: 's 1/é', flow_id: flow, message_count: 3, last_text: 'three', metadata: { user_id: 'u-1' } },
  })
  const monitor = await app.inject({
    url: `/api/v1/monitor/messages?flow_id=${flow}&session_id=${encodeURIComponent('s 1/é')}`,
    headers: internalHeaders(A),
  })
  t.same(lines.slice(1), monitor.json(), 'the same messages, shape and order as the monitor list')
  t.same(
    lines.slice(1).map((l) => l.id),
    stored.map((m) => m.id),
  )
})

t.test('export: 404 for an unknown, emptied or foreign session; 422 for a bad flow_id', async (t) => {
  const flow = randomUUID()
  await storeSession(A, flow, 's1', ['a'])
  t.equal((await exported(A, exportUrl('nope', flow))).status, 404)
  t.equal((await exported(A, exportUrl('s1', randomUUID()))).status, 404)
  t.equal((await exported(B, exportUrl('s1', flow))).status, 404, "another tenant's session does not exist")
  t.equal((await exported(A, exportUrl('s1', 'x'))).status, 422)
  t.equal((await exported(A, '/api/v1/monitor/sessions/s1/export')).status, 422, 'flow_id is required')
  await app.inject({
    method: 'DELETE',
    url: `/api/v1/monitor/messages/session/s1?flow_id=${flow}`,
    headers: internalHeaders(A),
  })
  t.equal((await exported(A, exportUrl('s1', flow))).status, 404, 'a deleted session')
})

t.test('export by metadata: every matching session of the tenant in all flows, one after another', async (t) => {
  const [f1, f2] = [randomUUID(), randomUUID()]
  await storeSession(A, f1, 'a', ['a1', 'a2'], { user_id: 'u-1', plan: 'pro' })
  await storeSession(A, f2, 'b', ['b1'], { user_id: 'u-1' })
  await storeSession(A, f2, 'c', ['c1'], { user_id: 'u-2' })
  await storeSession(B, f1, 'a', ['B'], { user_id: 'u-1' })
  const all = await exported(A, '/api/v1/monitor/sessions/export?metadata.user_id=u-1')
  t.equal(all.status, 200)
  t.match(all.type, /^application\/x-ndjson/)
  // sessions in (flow_id, session_id) order, each followed by its messages
  const expected = [
    { flow: f1, id: 'a', texts: ['a1', 'a2'] },
    { flow: f2, id: 'b', texts: ['b1'] },
  ].sort((x, y) => (x.flow < y.flow ? -1 : 1))
  t.same(
    all.lines.map((l) => (l.session ? `session ${l.session.flow_id} ${l.session.session_id}` : l.text)),
    expected.flatMap((s) => [`session ${s.flow} ${s.id}`, ...s.texts]),
  )
  const both = await exported(A, '/api/v1/monitor/sessions/export?metadata.user_id=u-1&metadata.plan=pro')
  t.same(
    both.lines.map((l) => l.session?.session_id ?? l.text),
    ['a', 'a1', 'a2'],
  )
  const none = await exported(A, '/api/v1/monitor/sessions/export?metadata.user_id=nobody')
  t.equal(none.status, 200)
  t.equal(none.body, '', 'no match: an empty export')
  for (const query of [
    '',
    `?flow_id=${f1}`,
    '?metadata.a%20b=x',
    '?metadata.k=a&metadata.k=b',
    `?metadata.k=${'x'.repeat(513)}`,
  ]) {
    const res = await exported(A, `/api/v1/monitor/sessions/export${query}`)
    t.equal(res.status, 400, `"${query.slice(0, 40)}": ${res.body.slice(0, 120)}`)
  }
})

t.test(
  'erase by metadata: every matching session of the tenant in every flow, messages and cache entries',
  async (t) => {
    const [f1, f2] = [randomUUID(), randomUUID()]
    await storeSession(A, f1, 'a', ['a1', 'a2'], { user_id: 'u-1' })
    await storeSession(A, f2, 'b', ['b1'], { user_id: 'u-1', plan: 'pro' })
    await storeSession(A, f2, 'keep', ['k1'], { user_id: 'u-2' })
    await storeSession(B, f1, 'a', ['B'], { user_id: 'u-1' })
    // warm the history cache of a session about to be erased
    t.equal((await history(app, A, { flow_id: f1, session_id: 'a' })).length, 2)
    const erase = (tenant: string, query: string) =>
      app.inject({ method: 'DELETE', url: `/api/v1/monitor/sessions${query}`, headers: internalHeaders(tenant) })
    for (const query of ['', `?flow_id=${f1}`, '?metadata.=x', '?metadata.k=a&metadata.k=b']) {
      const res = await erase(A, query)
      t.equal(res.statusCode, 400, `"${query}": ${res.body}`)
    }
    let res = await erase(A, '?metadata.user_id=u-1&metadata.plan=pro')
    t.same(res.json(), { deleted_sessions: 1, deleted_messages: 1 })
    res = await erase(A, '?metadata.user_id=u-1')
    t.equal(res.statusCode, 200)
    t.same(res.json(), { deleted_sessions: 1, deleted_messages: 2 })
    t.same(await history(app, A, { flow_id: f1, session_id: 'a' }), [], 'the cached history is gone')
    const left = await app.inject({ url: '/api/v1/monitor/messages', headers: internalHeaders(A) })
    t.same(
      (left.json() as Line[]).map((m) => m.text),
      ['k1'],
    )
    const listed = await app.inject({
      url: '/api/v1/monitor/sessions?metadata.user_id=u-1',
      headers: internalHeaders(A),
    })
    t.same(listed.json(), [])
    // B's session with the same metadata, flow and ID is untouched
    t.equal((await history(app, B, { flow_id: f1, session_id: 'a' })).length, 1)
    t.same((await erase(A, '?metadata.user_id=u-1')).json(), { deleted_sessions: 0, deleted_messages: 0 })
    // the erased sessions forgot their metadata: used again, they do not match
    await storeSession(A, f1, 'a', ['again'])
    t.same((await erase(A, '?metadata.user_id=u-1')).json(), { deleted_sessions: 0, deleted_messages: 0 })
  },
)

t.test('erase in batches: 250 sessions over several transactions', async (t) => {
  const flow = randomUUID()
  const inputs = Array.from({ length: 250 }, (_, i) =>
    messageInput({ flow_id: flow, session_id: `s${i}`, session_metadata: { user_id: 'bulk' } }),
  )
  await store(app, A, inputs.slice(0, 200))
  await store(app, A, [...inputs.slice(200), ...inputs.slice(200).map((m) => ({ ...m, id: randomUUID() }))])
  const res = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/sessions?metadata.user_id=bulk',
    headers: internalHeaders(A),
  })
  t.same(res.json(), { deleted_sessions: 250, deleted_messages: 300 })
  const left = await app.inject({ url: `/api/v1/monitor/messages?flow_id=${flow}`, headers: internalHeaders(A) })
  t.same(left.json(), [])
})

// a full garbage collection before each heap sample: what the heap retains, not the garbage not collected yet
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const retainedHeap = () => {
  gc()
  return process.memoryUsage().heapUsed
}

/** Reads an export over HTTP as it streams, keeping nothing but counts; samples the retained heap while reading. */
function streamExport(tenant: string, url: string, onLine: (line: string, index: number) => void) {
  return new Promise<{ lines: number; bytes: number; peakHeapGrowth: number; status: number }>((resolve, reject) => {
    const heapBefore = retainedHeap()
    let peak = 0
    let chunks = 0
    let lines = 0
    let bytes = 0
    let rest = ''
    const req = request(`${base}${url}`, { headers: internalHeaders(tenant) }, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        bytes += Buffer.byteLength(chunk)
        const parts = (rest + chunk).split('\n')
        rest = parts.pop() ?? ''
        for (const part of parts) onLine(part, lines++)
        if (++chunks % 50 === 0) peak = Math.max(peak, retainedHeap() - heapBefore)
      })
      res.on('end', () => resolve({ lines, bytes, peakHeapGrowth: peak, status: res.statusCode ?? 0 }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('export of a 100,000-message session: every line in order, memory flat', async (t) => {
  const flow = randomUUID()
  const n = 100_000
  // seeded with SQL: 100,000 messages of ~600 bytes each (about 80 MB of NDJSON), one per millisecond
  await app.db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text, ts)
     SELECT md5($1 || i)::uuid, $1, $2, 'big', 'User', 'User', 'm-' || lpad(i::text, 6, '0') || ' ' || repeat('x', 600),
       timestamptz '2026-01-01' + i * interval '1 millisecond'
     FROM generate_series(1, $3::int) AS i`,
    [A, flow, n],
  )
  await app.db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version, metadata)
     SELECT $1, $2, 'big', count(*), min(ts), max(ts), 'last', nextval('session_version_seq'), '{"user_id":"big"}'
     FROM messages WHERE tenant_id = $1 AND flow_id = $2 AND session_id = 'big'`,
    [A, flow],
  )
  let inOrder = true
  let first = ''
  const started = Date.now()
  const result = await streamExport(A, exportUrl('big', flow), (line, i) => {
    if (i === 0) first = line
    else if (!line.startsWith(`{"id":`) || line.indexOf(`"text":"m-${String(i).padStart(6, '0')} `) < 0) inOrder = false
  })
  const seconds = (Date.now() - started) / 1000
  t.equal(result.status, 200)
  t.equal(result.lines, n + 1, 'a summary line and one line per message')
  t.ok(inOrder, 'messages oldest first, each once')
  t.match(JSON.parse(first), { session: { session_id: 'big', message_count: n, metadata: { user_id: 'big' } } })
  const mb = result.bytes / 1e6
  t.comment(
    `${mb.toFixed(1)} MB in ${seconds.toFixed(1)} s; peak retained heap growth ${(result.peakHeapGrowth / 1e6).toFixed(1)} MB`,
  )
  t.ok(result.bytes > 60e6, 'the export is larger than the bound below')
  t.ok(
    result.peakHeapGrowth < 20e6,
    `retained heap growth stays bounded (${(result.peakHeapGrowth / 1e6).toFixed(1)} MB)`,
  )
})

t.test('a slow reader is not read ahead of: the export waits for the socket', async (t) => {
  const flow = randomUUID()
  await app.db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text, ts)
     SELECT md5($1 || i)::uuid, $1, $2, 'slow', 'User', 'User', repeat('y', 1000),
       timestamptz '2026-01-01' + i * interval '1 millisecond'
     FROM generate_series(1, 40000) AS i`,
    [A, flow],
  )
  await app.db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version)
     SELECT $1, $2, 'slow', count(*), min(ts), max(ts), 'y', nextval('session_version_seq')
     FROM messages WHERE tenant_id = $1 AND flow_id = $2`,
    [A, flow],
  )
  // count the page reads of the export while the client does not read
  let pages = 0
  const query = app.db.query.bind(app.db)
  app.db.query = ((sql: string, params?: unknown[]) => {
    if (sql.includes('ORDER BY m.ts, m.seq LIMIT $4')) pages++
    return query(sql, params)
  }) as typeof app.db.query
  t.teardown(() => {
    app.db.query = query
  })
  await new Promise<void>((resolve, reject) => {
    const req = request(`${base}${exportUrl('slow', flow)}`, { headers: internalHeaders(A) }, (res) => {
      res.pause()
      setTimeout(() => {
        // the socket's buffers (kernel, both ends) take some MB; the rest waits for the reader
        t.ok(pages < 25, `paused: ${pages} of 40 pages read`)
        let lines = 0
        res.on('data', (c: Buffer) => {
          for (const b of c) if (b === 10) lines++
        })
        res.on('end', () => {
          t.equal(lines, 40_001)
          t.equal(pages, 41, 'every page read once the client reads (the last one empty)')
          resolve()
        })
        res.resume()
      }, 1500)
    })
    req.on('error', reject)
    req.end()
  })
})
