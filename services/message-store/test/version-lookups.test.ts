import { randomUUID } from 'node:crypto'
import t from 'tap'
import { readVersions } from '../src/domain/repository/history-reads.js'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

t.test('readVersions answers many sessions in one statement, in the order asked, 0 for unknown ones', async (t) => {
  const app = await buildTestApp(t)
  const flow = randomUUID()
  const other = randomUUID()
  // session IDs that differ only by tenant, by flow, or by bytes that a non-"C" collation would fold
  const written = [
    { tenant: 'tenant-a', flowId: flow, sessionId: 'S' },
    { tenant: 'tenant-b', flowId: flow, sessionId: 'S' },
    { tenant: 'tenant-a', flowId: other, sessionId: 'S' },
    { tenant: 'tenant-a', flowId: flow, sessionId: 'e\u0301' },
  ]
  for (const k of written) {
    const r = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: internalHeaders(k.tenant),
      payload: messageInput({ flow_id: k.flowId, session_id: k.sessionId }),
    })
    t.equal(r.statusCode, 201)
  }
  const one = await Promise.all(written.map((k) => readVersions(app.db, [k])))
  const asked = [
    written[3],
    { tenant: 'tenant-a', flowId: flow, sessionId: 's' },
    written[1],
    { tenant: 'tenant-a', flowId: flow, sessionId: '\u00e9' },
    written[0],
    written[2],
  ] as (typeof written)[number][]
  const many = await readVersions(app.db, asked)
  t.same(many, [one[3]?.[0], 0, one[1]?.[0], 0, one[0]?.[0], one[2]?.[0]], 'each its own version, unknown ones 0')
  t.equal(new Set(one.map((v) => v[0])).size, 4, 'the four sessions have four versions')
  t.ok(
    one.every((v) => (v[0] ?? 0) > 0),
    'every written session has a version',
  )
})

t.test('concurrent cached reads share lookup statements and each sees the latest acknowledged write', async (t) => {
  const app = await buildTestApp(t, { env: { VERSION_LOOKUP_CONCURRENCY: '1' } })
  t.ok(app.historyCache, 'this test needs the history cache')
  const flow_id = randomUUID()
  const sessions = Array.from({ length: 40 }, (_, i) => `s${i}`)
  const store = async (session_id: string, text: string) => {
    const r = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: internalHeaders(),
      payload: messageInput({ flow_id, session_id, text }),
    })
    t.equal(r.statusCode, 201)
  }
  for (const session_id of sessions) await store(session_id, `first ${session_id}`)
  for (const session_id of sessions) await history(app, 'tenant-a', { flow_id, session_id }) // fill the cache
  // a second message in every other session: each read below must see it
  for (const session_id of sessions.filter((_, i) => i % 2 === 0)) await store(session_id, `second ${session_id}`)
  const before = app.repository.stats().lookups
  const reads = await Promise.all(sessions.map((session_id) => history(app, 'tenant-a', { flow_id, session_id })))
  const statements = app.repository.stats().lookups - before
  t.same(
    reads.map((r) => r.map((m) => m.text)),
    sessions.map((s, i) => (i % 2 === 0 ? [`first ${s}`, `second ${s}`] : [`first ${s}`])),
    'every read answers its own session, with every acknowledged message',
  )
  t.ok(statements < sessions.length, `${sessions.length} concurrent reads took ${statements} lookup statements`)
})
