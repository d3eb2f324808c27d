import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

t.test('concurrent writes are coalesced into fewer statements, each answered with its own messages', async (t) => {
  const app = await buildTestApp(t, { env: { WRITE_CONCURRENCY: '1' } })
  const flow_id = randomUUID()
  const inputs = Array.from({ length: 100 }, (_, i) =>
    messageInput({ flow_id, session_id: `s${i % 5}`, text: `m${i}` }),
  )
  const before = app.repository.stats().statements
  const responses = await Promise.all(
    inputs.map((payload, i) =>
      app.inject({
        method: 'POST',
        url: '/internal/messages',
        headers: internalHeaders(i % 2 ? 'tenant-a' : 'tenant-b'),
        payload,
      }),
    ),
  )
  t.same(
    responses.map((r) => r.statusCode),
    inputs.map(() => 201),
  )
  t.same(
    responses.map((r) => r.json().id),
    inputs.map((m) => m.id),
    'each caller gets its own message back',
  )
  t.ok(app.repository.stats().statements - before <= inputs.length, 'never more statements than writes')
  for (const tenant of ['tenant-a', 'tenant-b']) {
    for (let s = 0; s < 5; s++) {
      const got = await history(app, tenant, { flow_id, session_id: `s${s}`, limit: 100 })
      const want = inputs.filter((_, i) => i % 5 === s && (i % 2 ? 'tenant-a' : 'tenant-b') === tenant)
      t.same(got.map((m) => m.id).sort(), want.map((m) => m.id).sort(), `${tenant} s${s} holds exactly its messages`)
    }
  }
})

t.test('writes issued together go out as one statement after the one in flight', async (t) => {
  const app = await buildTestApp(t, { env: { WRITE_CONCURRENCY: '1' } })
  const flow_id = randomUUID()
  const before = app.repository.stats().statements
  const inputs = Array.from({ length: 50 }, (_, i) => messageInput({ flow_id, session_id: 'same', text: `m${i}` }))
  const results = await Promise.all(inputs.map((input) => app.repository.write('tenant-a', [input])))
  t.equal(app.repository.stats().statements - before, 2, 'the first write alone, the 49 that waited in one statement')
  t.same(
    results.map(([m]) => m?.id),
    inputs.map((m) => m.id),
  )
  const got = await history(app, 'tenant-a', { flow_id, session_id: 'same', limit: 100 })
  t.same(
    got.map((m) => m.text),
    inputs.map((m) => m.text),
    'stored in the order they were issued',
  )
})

t.test('a bad write coalesced with good ones fails alone', async (t) => {
  const app = await buildTestApp(t, { env: { WRITE_CONCURRENCY: '1' } })
  const flow_id = randomUUID()
  const taken = messageInput({ flow_id, session_id: 'x' })
  const first = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders('owner'),
    payload: taken,
  })
  t.equal(first.statusCode, 201)
  const good = Array.from({ length: 20 }, () => messageInput({ flow_id, session_id: 'ok' }))
  const payloads = [
    ...good.map((payload) => ({ tenant: 'tenant-a', payload })),
    { tenant: 'tenant-a', payload: messageInput({ flow_id, session_id: 'bad', text: 'nul\u0000' }) },
    { tenant: 'intruder', payload: taken },
  ]
  const responses = await Promise.all(
    payloads.map(({ tenant, payload }) =>
      app.inject({ method: 'POST', url: '/internal/messages', headers: internalHeaders(tenant), payload }),
    ),
  )
  t.same(
    responses.slice(0, 20).map((r) => r.statusCode),
    good.map(() => 201),
    'the good writes are stored',
  )
  t.equal(responses[20]?.statusCode, 422, 'the NUL text is refused')
  t.equal(responses[21]?.statusCode, 409, "another tenant's id is refused")
  const stored = await history(app, 'tenant-a', { flow_id, session_id: 'ok', limit: 100 })
  t.equal(stored.length, 20)
  t.same(await history(app, 'tenant-a', { flow_id, session_id: 'bad', limit: 100 }), [])
})

t.test('in one coalesced statement, bad writes are retried alone and only they fail', async (t) => {
  const app = await buildTestApp(t, { env: { WRITE_CONCURRENCY: '1' } })
  const flow_id = randomUUID()
  const taken = messageInput({ flow_id, session_id: 'x' })
  await app.repository.write('owner', [taken])
  const good = Array.from({ length: 10 }, () => messageInput({ flow_id, session_id: 'ok' }))
  const before = app.repository.stats().statements
  const settled = await Promise.allSettled([
    app.repository.write('tenant-a', [messageInput({ flow_id, session_id: 'first' })]),
    ...good.map((m) => app.repository.write('tenant-a', [m])),
    app.repository.write('tenant-a', [messageInput({ flow_id, session_id: 'bad', text: 'nul\u0000' })]),
    app.repository.write('intruder', [taken]),
  ])
  t.same(
    settled.slice(0, 11).map((s) => s.status),
    Array(11).fill('fulfilled'),
  )
  const nul = settled[11] as PromiseRejectedResult
  t.equal(nul.status, 'rejected')
  t.equal(nul.reason.code, '22P05', 'Postgres refused the NUL')
  const foreign = settled[12] as PromiseRejectedResult
  t.equal(foreign.status, 'rejected')
  t.equal(foreign.reason.name, 'Error')
  t.match(foreign.reason.message, /another owner/)
  // 1 (first) + 1 (the failed batch of 12) + 12 (each retried alone)
  t.equal(app.repository.stats().statements - before, 14)
  t.equal((await history(app, 'tenant-a', { flow_id, session_id: 'ok', limit: 100 })).length, 10)
})

t.test('in one coalesced statement, a new id named by two tenants is the first one’s', async (t) => {
  const app = await buildTestApp(t, { env: { WRITE_CONCURRENCY: '1' } })
  const flow_id = randomUUID()
  const shared = messageInput({ flow_id, session_id: 'shared', text: 'mine' })
  const before = app.repository.stats().statements
  const settled = await Promise.allSettled([
    app.repository.write('tenant-a', [messageInput({ flow_id, session_id: 'first' })]),
    app.repository.write('tenant-a', [shared]),
    app.repository.write('intruder', [{ ...shared, text: 'theirs' }]),
  ])
  t.equal(app.repository.stats().statements - before, 2, 'the second and third writes shared one statement')
  const [, mine, theirs] = settled
  t.equal(mine?.status, 'fulfilled')
  t.match((mine as PromiseFulfilledResult<Array<{ created: boolean }>>).value, [{ id: shared.id, created: true }])
  t.equal(theirs?.status, 'rejected')
  t.match((theirs as PromiseRejectedResult).reason.message, /another owner/)
  t.same(
    (await history(app, 'tenant-a', { flow_id, session_id: 'shared', limit: 10 })).map((m) => m.text),
    ['mine'],
  )
  t.same(
    await history(app, 'intruder', { flow_id, session_id: 'shared', limit: 10 }),
    [],
    'the refused write stored nothing',
  )
})
