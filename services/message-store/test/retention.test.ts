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
