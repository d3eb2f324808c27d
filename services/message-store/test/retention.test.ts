// Retention (issue 14, point 2): the tenant's default and flow overrides (PUT/GET /api/v1/monitor/retention),
// the sweeper (POST /api/v1/monitor/retention/sweep, and its timer), tenant isolation, the history cache after a
// sweep, writes racing a sweep, one sweep at a time over several instances, and the metrics.
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import { SweepBusyError } from '../src/domain/retention-sweeper.js'
import {
  backends,
  buildTestApp,
  cacheKind,
  dropSchema,
  history,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  type TestApp,
  uniqueName,
  waitFor,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)
// Several apps (each PGlite boots in seconds) and multi-instance sweeps.
t.setTimeout(240_000)

const A = 'tenant-a'
const B = 'tenant-b'
/** No timed sweeps unless a test asks for them: sweeps run on request. */
const NO_TIMER = { RETENTION_SWEEP_INTERVAL_SECONDS: '0' }

// One app for most cases (PGlite boots slowly); each case uses flows of its own.
const app = await buildTestApp(t, { env: NO_TIMER })

async function api(
  target: TestApp,
  tenant: string,
  method: 'GET' | 'PUT' | 'POST',
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await target.inject({ method, url, headers: internalHeaders(tenant), payload: payload as never })
  return { status: res.statusCode, body: res.json() }
}

/** Sets a limit (tenant default, or one flow's with `flowId`) and checks it was accepted. */
async function setLimit(t: Test, tenant: string, seconds: number | null, flowId?: string, target = app) {
  const url = `/api/v1/monitor/retention${flowId ? `?flow_id=${flowId}` : ''}`
  const res = await api(target, tenant, 'PUT', url, { max_idle_seconds: seconds })
  t.equal(res.status, 200, `PUT ${url} ${seconds}`)
  return res.body
}

async function sweep(tenant: string, target = app): Promise<{ deleted_sessions: number; deleted_messages: number }> {
  const res = await api(target, tenant, 'POST', '/api/v1/monitor/retention/sweep')
  if (res.status !== 200) throw new Error(`sweep: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body as never
}

/** Stores `perSession` messages in each session. */
async function seed(target: TestApp, tenant: string, flowId: string, sessions: string[], perSession = 2) {
  const all = sessions.flatMap((session_id) =>
    Array.from({ length: perSession }, (_, i) =>
      messageInput({ flow_id: flowId, session_id, text: `${session_id}-${i}` }),
    ),
  )
  for (let i = 0; i < all.length; i += 1000) await store(target, tenant, all.slice(i, i + 1000))
}

/** Moves the sessions' activity (and their messages) `seconds` into the past: idle that long. */
async function age(target: TestApp, tenant: string, flowId: string, sessions: string[], seconds: number) {
  const args = [tenant, flowId, sessions, seconds]
  await target.db.query(
    `UPDATE messages SET ts = ts - make_interval(secs => $4)
     WHERE tenant_id = $1 AND flow_id = $2 AND session_id = ANY($3::text[])`,
    args,
  )
  await target.db.query(
    `UPDATE sessions SET first_ts = first_ts - make_interval(secs => $4), last_ts = last_ts - make_interval(secs => $4)
     WHERE tenant_id = $1 AND flow_id = $2 AND session_id = ANY($3::text[])`,
    args,
  )
}

/** The sessions (with messages) of a flow, and their message counts, read from Postgres. */
async function remaining(target: TestApp, tenant: string, flowId: string): Promise<Record<string, number>> {
  const { rows } = await target.db.query<{ session_id: string; n: string }>(
    'SELECT session_id, count(*) AS n FROM messages WHERE tenant_id = $1 AND flow_id = $2 GROUP BY session_id',
    [tenant, flowId],
  )
  return Object.fromEntries(rows.map((r) => [r.session_id, Number(r.n)]))
}

t.test('PUT refuses a limit that is not an integer of at least 1 (422), and a malformed flow_id', async (t) => {
  const flow = randomUUID()
  const bad: unknown[] = [
    { max_idle_seconds: 0 },
    { max_idle_seconds: -5 },
    { max_idle_seconds: 1.5 },
    { max_idle_seconds: '60' },
    { max_idle_seconds: true },
    { max_idle_seconds: 2_147_483_648 },
    {},
    { max_idle_seconds: 60, extra: 1 },
    [60],
  ]
  for (const body of bad) {
    for (const url of ['/api/v1/monitor/retention', `/api/v1/monitor/retention?flow_id=${flow}`]) {
      const res = await api(app, A, 'PUT', url, body)
      t.equal(res.status, 422, `${url} ${JSON.stringify(body)}`)
      t.equal(res.body.code, 'MSGSTORE_VALIDATION')
    }
  }
  const notUuid = await api(app, A, 'PUT', '/api/v1/monitor/retention?flow_id=nope', { max_idle_seconds: 60 })
  t.equal(notUuid.status, 422, 'flow_id not a UUID')
  t.equal((await api(app, A, 'GET', '/api/v1/monitor/retention?flow_id=nope')).status, 422)
  const bodyText = await app.inject({
    method: 'PUT',
    url: '/api/v1/monitor/retention',
    headers: { ...internalHeaders(A), 'content-type': 'application/json' },
    payload: '{"max_idle_seconds": ',
  })
  t.equal(bodyText.statusCode, 400, 'malformed JSON')
  t.same((await api(app, A, 'GET', '/api/v1/monitor/retention')).body.default_max_idle_seconds, null, 'nothing stored')
  t.same(await setLimit(t, A, 1), { default_max_idle_seconds: 1, flows: [] }, '1 is the least limit')
  await setLimit(t, A, null)
})

t.test('GET shows the default, the overrides and the effective limit of a flow', async (t) => {
  const tenant = `t-${randomUUID()}`
  const [f1, f2] = [randomUUID(), randomUUID()].sort()
  const get = async (flowId?: string) =>
    (await api(app, tenant, 'GET', `/api/v1/monitor/retention${flowId ? `?flow_id=${flowId}` : ''}`)).body
  t.same(await get(), { default_max_idle_seconds: null, flows: [] }, 'nothing set')
  t.same(await get(f1), {
    default_max_idle_seconds: null,
    flows: [],
    effective: { flow_id: f1, max_idle_seconds: null, source: 'none' },
  })
  t.same(await setLimit(t, tenant, 3600), { default_max_idle_seconds: 3600, flows: [] }, 'PUT answers the retention')
  t.same((await get(f1)).effective, { flow_id: f1, max_idle_seconds: 3600, source: 'tenant' }, 'falls back')
  t.same(await setLimit(t, tenant, 60, f1), {
    default_max_idle_seconds: 3600,
    flows: [{ flow_id: f1, max_idle_seconds: 60 }],
    effective: { flow_id: f1, max_idle_seconds: 60, source: 'flow' },
  })
  await setLimit(t, tenant, 7200, f2)
  await setLimit(t, tenant, 120, f1)
  t.same(
    await get(),
    {
      default_max_idle_seconds: 3600,
      flows: [
        { flow_id: f1, max_idle_seconds: 120 },
        { flow_id: f2, max_idle_seconds: 7200 },
      ],
    },
    'both levels, an override replaced',
  )
  t.same((await get(f2)).flows, [{ flow_id: f2, max_idle_seconds: 7200 }], 'with flow_id only its override')
  await setLimit(t, tenant, null, f1)
  t.same((await get(f1)).effective, { flow_id: f1, max_idle_seconds: 3600, source: 'tenant' }, 'null: back to default')
  await setLimit(t, tenant, null)
  t.same((await get(f1)).effective, { flow_id: f1, max_idle_seconds: null, source: 'none' })
  t.same((await get(f2)).effective, { flow_id: f2, max_idle_seconds: 7200, source: 'flow' }, 'override stays')
  const other = randomUUID()
  t.same((await setLimit(t, tenant, null, other)).effective, { flow_id: other, max_idle_seconds: null, source: 'none' })
  t.same((await get()).flows, [{ flow_id: f2, max_idle_seconds: 7200 }], 'removing what is not set changes nothing')
})

t.test('a sweep deletes idle sessions by the flow override, else the tenant default, and keeps the rest', async (t) => {
  const tenant = `t-${randomUUID()}`
  const [fOverride, fDefault, fFallback] = [randomUUID(), randomUUID(), randomUUID()]
  await seed(app, tenant, fOverride, ['o-old', 'o-new'], 2)
  await seed(app, tenant, fDefault, ['d-old', 'd-mid', 'd-new'], 3)
  await seed(app, tenant, fFallback, ['f-old', 'f-mid'], 1)
  await age(app, tenant, fOverride, ['o-old'], 120)
  await age(app, tenant, fDefault, ['d-old'], 7200)
  await age(app, tenant, fDefault, ['d-mid'], 120)
  await age(app, tenant, fFallback, ['f-old'], 7200)
  await age(app, tenant, fFallback, ['f-mid'], 120)

  t.same(await sweep(tenant), { deleted_sessions: 0, deleted_messages: 0 }, 'no retention set: nothing deleted')
  await setLimit(t, tenant, 3600)
  await setLimit(t, tenant, 60, fOverride)
  await setLimit(t, tenant, 60, fFallback)
  await setLimit(t, tenant, null, fFallback)
  t.same(await sweep(tenant), { deleted_sessions: 3, deleted_messages: 2 + 3 + 1 })
  t.same(await remaining(app, tenant, fOverride), { 'o-new': 2 }, 'override (60 s): the 120 s idle session goes')
  t.same(await remaining(app, tenant, fDefault), { 'd-mid': 3, 'd-new': 3 }, 'default (3600 s): only the 2 h one')
  t.same(await remaining(app, tenant, fFallback), { 'f-mid': 1 }, 'override removed: the default applies')
  const sessions = await app.inject({
    method: 'GET',
    url: `/api/v1/monitor/sessions?flow_id=${fDefault}`,
    headers: internalHeaders(tenant),
  })
  t.same(
    sessions
      .json()
      .map((s: { session_id: string }) => s.session_id)
      .sort(),
    ['d-mid', 'd-new'],
    'the session list no longer shows them',
  )
  t.same(await sweep(tenant), { deleted_sessions: 0, deleted_messages: 0 }, 'a second sweep finds nothing')

  // A swept session that gets a new message starts afresh.
  await seed(app, tenant, fOverride, ['o-old'], 1)
  t.same(texts(await history(app, tenant, { flow_id: fOverride, session_id: 'o-old' })), ['o-old-0'])
})

const texts = (list: Array<{ text: string }>) => list.map((m) => m.text)

t.test('after a sweep no history read returns the deleted messages (cache entries dropped)', async (t) => {
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  await seed(app, tenant, flow, ['cached', 'kept'], 3)
  // Reads fill the cache (twice: the second one is answered from it when there is one).
  for (let i = 0; i < 2; i++) {
    t.equal((await history(app, tenant, { flow_id: flow, session_id: 'cached' })).length, 3)
    t.equal((await history(app, tenant, { flow_id: flow, session_id: 'kept' })).length, 3)
  }
  await age(app, tenant, flow, ['cached'], 600)
  await setLimit(t, tenant, 300, flow)
  const before = app.repository.stats()
  t.same(await sweep(tenant), { deleted_sessions: 1, deleted_messages: 3 })
  t.same(await history(app, tenant, { flow_id: flow, session_id: 'cached' }), [], 'the swept session reads empty')
  t.same(await history(app, tenant, { flow_id: flow, session_id: 'cached', limit: 1 }), [])
  t.equal((await history(app, tenant, { flow_id: flow, session_id: 'kept' })).length, 3, 'the other is intact')
  if (app.historyCache) {
    t.ok(app.repository.stats().hits > before.hits, 'the kept session is still served from the cache')
    const entry = await app.historyCache.get(`${encodeURIComponent(tenant)}:${flow}:cached`, 10).catch(() => null)
    t.equal(entry, null, "the swept session's cache entry is gone")
  }
  // A new message in the swept session: its history holds only that one, from any cache state.
  await seed(app, tenant, flow, ['cached'], 1)
  t.same(texts(await history(app, tenant, { flow_id: flow, session_id: 'cached' })), ['cached-0'])
})

t.test("tenant isolation: a tenant's retention never reads, sets or sweeps another's", async (t) => {
  const flow = randomUUID()
  const [ta, tb] = [`ta-${randomUUID()}`, `tb-${randomUUID()}`]
  // Both tenants use the same flow ID and session IDs; both sessions are a day idle.
  await seed(app, ta, flow, ['s1', 's2'], 2)
  await seed(app, tb, flow, ['s1', 's2'], 2)
  await age(app, ta, flow, ['s1', 's2'], 86_400)
  await age(app, tb, flow, ['s1', 's2'], 86_400)
  await setLimit(t, ta, 60)
  await setLimit(t, ta, 60, flow)
  t.same((await api(app, tb, 'GET', `/api/v1/monitor/retention?flow_id=${flow}`)).body, {
    default_max_idle_seconds: null,
    flows: [],
    effective: { flow_id: flow, max_idle_seconds: null, source: 'none' },
  })
  await setLimit(t, tb, 999_999, flow)
  t.same(
    (await api(app, ta, 'GET', `/api/v1/monitor/retention?flow_id=${flow}`)).body.effective,
    { flow_id: flow, max_idle_seconds: 60, source: 'flow' },
    "B's override of the same flow ID does not change A's",
  )
  t.same(await sweep(tb), { deleted_sessions: 0, deleted_messages: 0 }, "B's sweep: B's limit keeps B's sessions")
  t.same(await remaining(app, ta, flow), { s1: 2, s2: 2 }, "B's sweep does not touch A's sessions")
  t.same(await sweep(ta), { deleted_sessions: 2, deleted_messages: 4 })
  t.same(await remaining(app, ta, flow), {})
  t.same(await remaining(app, tb, flow), { s1: 2, s2: 2 }, "A's sweep does not touch B's sessions")
  // A sweep of every tenant (the timer's) applies each tenant's own rules.
  await app.retentionSweeper.sweep()
  t.same(await remaining(app, tb, flow), { s1: 2, s2: 2 }, "a sweep of all tenants applies B's own limit")
})

t.test('batches: more expired sessions than one batch holds are all deleted, and the recent kept', async (t) => {
  const small = await buildTestApp(t, { env: { ...NO_TIMER, RETENTION_SWEEP_BATCH_SIZE: '7' } })
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  const old = Array.from({ length: 50 }, (_, i) => `old-${i}`)
  await seed(small, tenant, flow, [...old, 'new-1', 'new-2'], 2)
  await age(small, tenant, flow, old, 3600)
  await setLimit(t, tenant, 600, undefined, small)
  t.same(await sweep(tenant, small), { deleted_sessions: 50, deleted_messages: 100 })
  t.same(await remaining(small, tenant, flow), { 'new-1': 2, 'new-2': 2 })
})

t.test('a session that got a message before its batch ran is kept, and no write racing a sweep is lost', async (t) => {
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  const sessions = Array.from({ length: 200 }, (_, i) => `s-${i}`)
  await seed(app, tenant, flow, sessions, 2)
  await age(app, tenant, flow, sessions, 3600)
  await setLimit(t, tenant, 600)
  // Written after the sessions went idle, before the sweep: the sweep's re-check of last_ts keeps it.
  await seed(app, tenant, flow, ['s-0'], 1)
  // Written while the sweep runs: each write is acknowledged before or after the batch that holds its session.
  const written = sessions.slice(1, 100)
  const [swept, acks] = await Promise.all([
    sweep(tenant),
    Promise.all(
      written.map((session_id) =>
        store(app, tenant, [messageInput({ flow_id: flow, session_id, text: `${session_id}-late` })]),
      ),
    ),
  ])
  t.equal(acks.length, written.length)
  const left = await remaining(app, tenant, flow)
  t.equal(left['s-0'], 3, 'the session written just before the sweep is kept whole')
  for (const session_id of written) {
    const texts = (await history(app, tenant, { flow_id: flow, session_id })).map((m) => m.text)
    if (!texts.includes(`${session_id}-late`)) t.fail(`the write to ${session_id} was lost`)
    // Either kept whole (written before its batch) or swept and restarted by the write (written after).
    if (texts.length !== 1 && texts.length !== 3) t.fail(`${session_id} holds ${texts.join(', ')}`)
  }
  for (const session_id of sessions.slice(100)) t.notOk(left[session_id], `${session_id} swept`)
  const keptWhole = Object.keys(left).filter((s) => left[s] === 3).length
  t.equal(swept.deleted_sessions, 200 - keptWhole, 'every session counted once: the swept, not the kept')
  t.equal(swept.deleted_messages, swept.deleted_sessions * 2, 'each swept session had its two messages')
})

t.test('a write in progress on an idle session is not waited for, and its session is kept', async (t) => {
  if (storageKind !== 'postgres') {
    // PGlite runs one transaction at a time: a write cannot be in progress while a sweep runs.
    t.comment('PGlite: covered by the sequential and the racing cases above')
    return
  }
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  await seed(app, tenant, flow, ['busy', 'idle'], 2)
  await age(app, tenant, flow, ['busy', 'idle'], 3600)
  await setLimit(t, tenant, 600)
  // What a write does, left uncommitted while the sweep runs: its session row is locked and moved on.
  const swept = await app.db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text)
       VALUES ($1, $2, $3, 'busy', 'User', 'User', 'in flight')`,
      [randomUUID(), tenant, flow],
    )
    await tx.query(
      `UPDATE sessions SET message_count = message_count + 1, last_ts = now(), version = nextval('session_version_seq')
       WHERE tenant_id = $1 AND flow_id = $2 AND session_id = 'busy'`,
      [tenant, flow],
    )
    return sweep(tenant)
  })
  t.same(swept, { deleted_sessions: 1, deleted_messages: 2 }, 'only the idle session, without waiting for the write')
  t.same(await remaining(app, tenant, flow), { busy: 3 })
  t.same(await sweep(tenant), { deleted_sessions: 0, deleted_messages: 0 }, 'active now: kept by the next sweep too')
})

t.test('one sweep at a time: a sweep finds the lease taken, then takes it over once it ran out', async (t) => {
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  await seed(app, tenant, flow, ['s'], 1)
  await age(app, tenant, flow, ['s'], 3600)
  await setLimit(t, tenant, 600)
  const other = randomUUID()
  t.ok(await app.repository.acquireSweepLease(other, 60), 'another sweep holds the lease')
  t.notOk(await app.repository.acquireSweepLease(randomUUID(), 60), 'nobody else gets it')
  await t.rejects(app.retentionSweeper.sweep(tenant), { name: 'SweepBusyError' }, 'a sweep does not start')
  await t.rejects(app.retentionSweeper.sweep(tenant, 300), { name: 'SweepBusyError' }, 'nor after waiting a while')
  t.same(await remaining(app, tenant, flow), { s: 1 })
  // The other sweep's instance died: its lease runs out and the next sweep takes over.
  await app.db.query(`UPDATE retention_sweep_lease SET expires_at = now() - interval '1 second'`)
  t.same(await sweep(tenant), { deleted_sessions: 1, deleted_messages: 1 })
  const { rows } = await app.db.query('SELECT holder FROM retention_sweep_lease')
  t.same(rows, [], 'the lease is given back after the sweep')
})

t.test('/metrics counts sweeps, deleted sessions and messages, and sweep durations', async (t) => {
  const own = await buildTestApp(t, { cache: 'none', env: NO_TIMER })
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  const scrape = async () => (await own.inject({ method: 'GET', url: '/metrics' })).body
  const value = (text: string, name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  const start = await scrape()
  for (const name of [
    'retention_sweeps_total',
    'retention_sessions_deleted_total',
    'retention_messages_deleted_total',
  ]) {
    t.match(start, new RegExp(`# TYPE ${name} counter`))
    t.equal(value(start, name), 0, `${name} starts at 0`)
  }
  await seed(own, tenant, flow, ['a', 'b', 'c'], 3)
  await age(own, tenant, flow, ['a', 'b'], 3600)
  await setLimit(t, tenant, 600, flow, own)
  t.same(await sweep(tenant, own), { deleted_sessions: 2, deleted_messages: 6 })
  t.same(await sweep(tenant, own), { deleted_sessions: 0, deleted_messages: 0 })
  const end = await scrape()
  t.equal(value(end, 'retention_sweeps_total'), 2)
  t.equal(value(end, 'retention_sessions_deleted_total'), 2)
  t.equal(value(end, 'retention_messages_deleted_total'), 6)
  t.equal(value(end, 'retention_sweep_duration_seconds_count'), 2)
  t.ok(value(end, 'retention_sweep_duration_seconds_sum') > 0)
})

t.test('the timer sweeps every RETENTION_SWEEP_INTERVAL_SECONDS, and stops with the app', async (t) => {
  const timed = await buildTestApp(t, { cache: 'none', env: { RETENTION_SWEEP_INTERVAL_SECONDS: '1' } })
  const tenant = `t-${randomUUID()}`
  const flow = randomUUID()
  await seed(timed, tenant, flow, ['old', 'new'], 2)
  await age(timed, tenant, flow, ['old'], 3600)
  await setLimit(t, tenant, 600, undefined, timed)
  await waitFor(async () => !(await remaining(timed, tenant, flow)).old, 10_000)
  t.same(await remaining(timed, tenant, flow), { new: 2 }, 'swept by the timer, without a request')
})

if (!backends.postgresUrl) {
  t.comment('left out: several instances need one real Postgres (PGlite is embedded in one process)')
} else {
  t.test('two instances sweeping at once delete each session once, and their counts add up', async (t) => {
    const schema = uniqueName('ret')
    t.teardown(() => dropSchema(schema))
    const env = { ...NO_TIMER, RETENTION_SWEEP_BATCH_SIZE: '25' }
    const a = await buildTestApp(t, { schema, env })
    const b = await buildTestApp(t, { schema, env })
    const flows = [randomUUID(), randomUUID()] as const
    const sessions = Array.from({ length: 150 }, (_, i) => `s-${i}`)
    for (const flow of flows) {
      await seed(a, A, flow, sessions, 2)
      await age(a, A, flow, sessions, 3600)
      await seed(a, B, flow, sessions.slice(0, 10), 3)
      await age(a, B, flow, sessions.slice(0, 10), 3600)
    }
    await setLimit(t, A, 600, undefined, a)
    await setLimit(t, B, 60, flows[0], b)
    const skipped = (err: unknown) => (err instanceof SweepBusyError ? null : Promise.reject(err))
    const results = await Promise.all([
      sweep(A, a),
      sweep(A, b),
      // Timed sweeps do not wait: one that finds the lease taken is skipped.
      a.retentionSweeper.sweep().catch(skipped),
      b.retentionSweeper.sweep().catch(skipped),
    ])
    const [ra, rb] = results as Array<{ deleted_sessions: number; deleted_messages: number }>
    const timed = results.slice(2).filter((r) => r !== null) as Array<{
      deletedSessions: number
      deletedMessages: number
    }>
    const sessionsDeleted =
      (ra?.deleted_sessions ?? 0) + (rb?.deleted_sessions ?? 0) + timed.reduce((n, r) => n + r.deletedSessions, 0)
    const messagesDeleted =
      (ra?.deleted_messages ?? 0) + (rb?.deleted_messages ?? 0) + timed.reduce((n, r) => n + r.deletedMessages, 0)
    t.equal(sessionsDeleted, 2 * 150 + 10, "A's 300 sessions and B's 10 of its overridden flow, each counted once")
    t.equal(messagesDeleted, 2 * 150 * 2 + 10 * 3)
    t.same(await remaining(a, A, flows[0]), {})
    t.same(await remaining(a, A, flows[1]), {})
    t.same(await remaining(a, B, flows[0]), {})
    t.equal(Object.keys(await remaining(a, B, flows[1])).length, 10, "B's other flow has no limit: kept")
  })

  t.test('two instances on timers: one sweep at a time, the other skips', async (t) => {
    const schema = uniqueName('ret')
    t.teardown(() => dropSchema(schema))
    const env = { RETENTION_SWEEP_INTERVAL_SECONDS: '1', RETENTION_SWEEP_BATCH_SIZE: '1' }
    const a = await buildTestApp(t, { schema, cache: 'none', env })
    const b = await buildTestApp(t, { schema, cache: 'none', env })
    const flow = randomUUID()
    const sessions = Array.from({ length: 400 }, (_, i) => `s-${i}`)
    await seed(a, A, flow, sessions, 1)
    await age(a, A, flow, sessions, 3600)
    await setLimit(t, A, 600, undefined, a)
    const metric = async (x: TestApp, name: string) => {
      const text = (await x.inject({ method: 'GET', url: '/metrics' })).body
      return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
    }
    const total = async (name: string) => (await metric(a, name)) + (await metric(b, name))
    await waitFor(async () => (await total('retention_sessions_deleted_total')) >= 400, 20_000)
    t.same(await remaining(a, A, flow), {}, 'all swept')
    const deleted = await total('retention_sessions_deleted_total')
    t.equal(deleted, 400, 'the instances together counted each session once')
  })
}
