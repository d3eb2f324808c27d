// One run at a time per session (issue 15) through the run API, on the real message-store and the run-service's
// real tables (Postgres when the test command found it, else PGlite): 50 concurrent runs of Memory Echo on one
// session each see every earlier input once and in order; `reject` answers 409 and stores nothing; a bad
// `multitask_strategy` is a 422; a session held by an instance whose lease ran out is taken over; and (real
// Postgres only) two instances sharing one database keep the rule between them.
import { randomUUID } from 'node:crypto'
import { waitFor } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { loadConfig } from '../src/config.js'
import {
  backends,
  buildTestApp,
  internalHeaders,
  type MessageStore,
  sessionMessages,
  startMessageStore,
  storageKind,
  type TestApp,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

const NO_MODEL = { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', OPENAI_API_KEY: '' }
/** Short leases and polls, so that a taken-over session is free soon. */
const FAST_LEASES = { RUN_SESSION_LEASE_MS: '1000', RUN_SESSION_HEARTBEAT_MS: '200', RUN_SESSION_POLL_MS: '50' }

/** The gate of `gate()`, if one is armed. */
let armedGate: { reach: () => void; opening: Promise<void> } | undefined
const store: MessageStore = await startMessageStore(t, {
  onRequest: async (request) => {
    const current = armedGate
    if (!current || request.method !== 'POST') return
    armedGate = undefined
    current.reach()
    await current.opening
  },
})

/**
 * Holds the message-store's next write (POST) until `open()`; `reached` resolves when one arrived. Memory
 * Echo's first call is its write: a run held there is in flight on its session.
 */
function gate() {
  let reach: () => void = () => {}
  let open: () => void = () => {}
  const reached = new Promise<void>((resolve) => (reach = resolve))
  const opening = new Promise<void>((resolve) => (open = resolve))
  armedGate = { reach, opening }
  return { reached, open }
}

function run(app: TestApp, tenant: string, payload: Record<string, unknown>, query = '') {
  return app.inject({
    method: 'POST',
    url: `/api/v1/run/memory-echo${query}`,
    headers: internalHeaders(tenant),
    payload,
  })
}

interface RunBody {
  session_id: string
  outputs: { outputs: { outputs: { message: { message: string } } }[] }[]
}

/** The inputs a Memory Echo reply lists: the session's User messages so far, its own last. */
async function echoed(app: TestApp, tenant: string, payload: Record<string, unknown>): Promise<string[]> {
  const res = await run(app, tenant, payload)
  if (res.statusCode !== 200) throw new Error(`run: ${res.statusCode} ${res.body}`)
  const text = (res.json() as RunBody).outputs[0]?.outputs[0]?.outputs.message.message ?? ''
  const [, list = ''] = text.split('Your messages in this session so far:\n')
  return list.split('\n').map((line) => line.replace(/^- /, ''))
}

const storedMessages = (tenant: string, flowId: string, sessionId: string) =>
  sessionMessages(store, tenant, flowId, sessionId)

async function memoryEchoId(app: TestApp, tenant: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers: internalHeaders(tenant) })
  const flow = (res.json() as { id: string; endpoint_name: string | null }[]).find(
    (one) => one.endpoint_name === 'memory-echo',
  )
  if (!flow) throw new Error('no memory-echo flow')
  return flow.id
}

/**
 * The replies of `count` concurrent runs on one session (`pick(i)`: the app of run i) and what the session
 * holds afterwards must show the runs one after another: the replies list 1, 2, …, count inputs, each list
 * the start of the next (no input twice, none missing, one order), and the stored messages alternate the
 * runs' question and answer.
 */
async function concurrentRunsTakeTurns(t: Test, pick: (i: number) => TestApp, count: number) {
  const tenant = `tenant-${randomUUID()}`
  const session = `busy-${randomUUID()}`
  const inputs = Array.from({ length: count }, (_, i) => `turn ${i}`)
  const lists = await Promise.all(
    inputs.map((input, i) => echoed(pick(i), tenant, { input_value: input, session_id: session })),
  )
  lists.sort((a, b) => a.length - b.length)
  t.same(
    lists.map((list) => list.length),
    inputs.map((_, i) => i + 1),
    'the replies list 1, 2, …, n inputs: each run saw every earlier one',
  )
  const last = lists.at(-1) ?? []
  t.same([...last].sort(), [...inputs].sort(), 'the last lists every input')
  t.equal(new Set(last).size, count, 'none twice')
  t.ok(
    lists.every((list) => list.every((input, i) => last[i] === input)),
    'each reply lists the inputs in the one order of the last',
  )
  t.ok(
    lists.every((list, i) => list.at(-1) === last[i]),
    'and ends with its own input: the runs executed in that order',
  )
  const stored = await storedMessages(tenant, await memoryEchoId(pick(0), tenant), session)
  t.equal(stored.length, 2 * count, 'a question and an answer per run')
  t.same(
    stored.map((m) => m.sender),
    inputs.flatMap(() => ['User', 'Machine']),
    'stored one run after another: question, answer, question, answer, … (no interleaving)',
  )
  t.same(
    stored.filter((m) => m.sender === 'User').map((m) => m.text),
    last,
    'the questions in the order the replies saw them',
  )
}

const app: TestApp = await buildTestApp(t, { messageStoreUrl: store.url, env: { ...NO_MODEL, ...FAST_LEASES } })

t.test('50 concurrent runs on one session take turns: each sees every earlier input once, in order', async (t) => {
  await concurrentRunsTakeTurns(t, () => app, 50)
})

t.test('runs on different sessions are not held up by a busy session', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const held = gate()
  const first = run(app, tenant, { input_value: 'slow', session_id: 'held' })
  await held.reached
  t.same(await echoed(app, tenant, { input_value: 'other', session_id: 'free' }), ['other'], 'another session runs')
  t.same(
    await echoed(app, tenant, { input_value: 'elsewhere', session_id: 'held', multitask_strategy: 'reject' }).catch(
      (e: Error) => e.message,
    ),
    'run: 409 ' +
      JSON.stringify({
        detail:
          'Another run is in flight on session "held" of this flow; with multitask_strategy "reject" this run was refused (nothing was stored)',
        code: 'RUNSVC_SESSION_BUSY',
      }),
    'while the held one is refused with reject',
  )
  held.open()
  t.equal((await first).statusCode, 200)
})

t.test('reject: 409 while another run is in flight, nothing stored; free again once it answered', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const session = 'reject-me'
  const held = gate()
  const first = run(app, tenant, { input_value: 'first', session_id: session })
  await held.reached

  for (const query of ['', '?stream=true']) {
    const refused = await run(
      app,
      tenant,
      { input_value: 'second', session_id: session, multitask_strategy: 'reject' },
      query,
    )
    t.equal(refused.statusCode, 409, `409${query}`)
    t.match(refused.headers['content-type'], /application\/json/, 'a JSON answer, not a stream')
    t.same(Object.keys(refused.json()).sort(), ['code', 'detail'], 'the error envelope')
    t.equal(refused.json().code, 'RUNSVC_SESSION_BUSY')
    t.match(refused.json().detail, /in flight on session "reject-me"/)
  }
  // an enqueued run waits behind the held one
  const third = echoed(app, tenant, { input_value: 'third', session_id: session, multitask_strategy: 'enqueue' })
  held.open()
  t.equal((await first).statusCode, 200, 'the held run completes')
  t.same(await third, ['first', 'third'], 'the enqueued one ran after it')

  const flowId = await memoryEchoId(app, tenant)
  t.same(
    (await storedMessages(tenant, flowId, session)).map((m) => [m.sender, m.text.split('\n')[0]]),
    [
      ['User', 'first'],
      ['Machine', 'You said: first'],
      ['User', 'third'],
      ['Machine', 'You said: third'],
    ],
    'the refused runs stored nothing',
  )
  // the session is free once a run has answered: a client's next run with reject goes through
  t.same(await echoed(app, tenant, { input_value: 'fourth', session_id: session, multitask_strategy: 'reject' }), [
    'first',
    'third',
    'fourth',
  ])
  const streamed = await run(
    app,
    tenant,
    { input_value: 'fifth', session_id: session, multitask_strategy: 'reject' },
    '?stream=true',
  )
  t.equal(streamed.statusCode, 200)
  t.match(streamed.body, /"event":"end"/, 'a streamed run with reject on a free session')
  t.equal(
    (await run(app, tenant, { input_value: 'sixth', session_id: session, multitask_strategy: 'reject' })).statusCode,
    200,
    'and its session is free again after its end event',
  )
})

t.test('the session is the resolved one: the flow ID without a session_id; null is the default strategy', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const held = gate()
  const first = run(app, tenant, { input_value: 'no session' })
  await held.reached
  const refused = await run(app, tenant, { input_value: 'again', multitask_strategy: 'reject' })
  t.equal(refused.statusCode, 409, 'a run without session_id is on the flow ID’s session')
  const flowId = await memoryEchoId(app, tenant)
  t.match(refused.json().detail, `session "${flowId}"`)
  const explicit = await run(app, tenant, { input_value: 'same', session_id: flowId, multitask_strategy: 'reject' })
  t.equal(explicit.statusCode, 409, 'the same session named explicitly')
  const waiting = run(app, tenant, { input_value: 'queued', multitask_strategy: null })
  held.open()
  t.equal((await first).statusCode, 200)
  t.equal((await waiting).statusCode, 200, 'null: enqueue')
})

t.test('a bad multitask_strategy is a 422 naming the field, before anything runs', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  for (const value of ['queue', 'ENQUEUE', 'Reject', '', 1, true, ['enqueue'], { strategy: 'reject' }]) {
    const res = await run(app, tenant, { input_value: 'x', session_id: 'bad', multitask_strategy: value })
    t.equal(res.statusCode, 422, `${JSON.stringify(value)}: 422`)
    t.equal(res.json().code, 'RUNSVC_VALIDATION')
    t.match(res.json().detail, /multitask_strategy/)
  }
  const flowId = await memoryEchoId(app, tenant)
  t.same(await storedMessages(tenant, flowId, 'bad'), [], 'nothing stored')
})

t.test('a session held by an instance whose lease ran out is taken over; a live one is waited for', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const flowId = await memoryEchoId(app, tenant)
  const other = randomUUID()
  const holdBy = async (expiresInMs: number, session: string) => {
    await app.db.query(
      `INSERT INTO run_service_instances (id, expires_at) VALUES ($1, now() + $2::integer * interval '1 millisecond')
       ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`,
      [other, expiresInMs],
    )
    await app.db.query(
      `INSERT INTO session_run_holders (tenant_id, flow_id, session_id, ticket, instance_id)
       VALUES ($1, $2, $3, nextval('session_run_tickets'), $4)`,
      [tenant, flowId, session, other],
    )
  }
  // a dead instance's hold: the run takes the session over at once
  await holdBy(-1000, 'dead-holder')
  t.same(
    await echoed(app, tenant, { input_value: 'mine now', session_id: 'dead-holder', multitask_strategy: 'reject' }),
    ['mine now'],
  )

  // a live instance's hold: reject is refused, enqueue waits until the lease runs out (it is never renewed)
  await holdBy(60_000, 'live-holder')
  const refused = await run(app, tenant, { input_value: 'x', session_id: 'live-holder', multitask_strategy: 'reject' })
  t.equal(refused.statusCode, 409, 'refused while the other instance lives')
  const waiting = echoed(app, tenant, { input_value: 'after', session_id: 'live-holder' })
  const waiters = async () =>
    (await app.db.query('SELECT 1 FROM session_run_waiters WHERE tenant_id = $1', [tenant])).rows.length
  await waitFor(async () => (await waiters()) === 1, 'the run waits in the queue')
  await app.db.query(`UPDATE run_service_instances SET expires_at = now() - interval '1 second' WHERE id = $1`, [other])
  t.same(await waiting, ['after'], 'the run went on once the lease ran out')
  t.equal(await waiters(), 0, 'and left the queue')
  const holders = await app.db.query('SELECT instance_id FROM session_run_holders WHERE tenant_id = $1', [tenant])
  t.same(holders.rows, [], 'nothing held once the runs answered')
})

t.test('two instances sharing one database keep the rule between them', async (t) => {
  if (!backends.postgresUrl) {
    t.comment('left out: two run-service instances need one real Postgres (PGlite is embedded in one process)')
    return
  }
  const instances = async () =>
    Number((await app.db.query<{ n: string }>('SELECT count(*) AS n FROM run_service_instances')).rows[0]?.n)
  const before = await instances()
  const second = await buildTestApp(t, {
    messageStoreUrl: store.url,
    env: { ...NO_MODEL, ...FAST_LEASES },
    schema: app.schema,
  })
  t.equal(await instances(), before + 1, 'each instance has its lease row')
  await t.test('50 concurrent runs on one session, spread over both', async (t) => {
    await concurrentRunsTakeTurns(t, (i) => (i % 2 === 0 ? app : second), 50)
  })
  await t.test('a run held on one instance: reject on the other is a 409; enqueue waits', async (t) => {
    const tenant = `tenant-${randomUUID()}`
    const held = gate()
    const first = run(app, tenant, { input_value: 'on the first', session_id: 'shared' })
    await held.reached
    const refused = await run(second, tenant, {
      input_value: 'on the second',
      session_id: 'shared',
      multitask_strategy: 'reject',
    })
    t.equal(refused.statusCode, 409)
    t.equal(refused.json().code, 'RUNSVC_SESSION_BUSY')
    const waiting = echoed(second, tenant, { input_value: 'queued on the second', session_id: 'shared' })
    await waitFor(
      async () =>
        (await app.db.query('SELECT 1 FROM session_run_waiters WHERE tenant_id = $1', [tenant])).rows.length === 1,
      'the second instance’s run waits in the shared queue',
    )
    held.open()
    t.equal((await first).statusCode, 200)
    t.same(await waiting, ['on the first', 'queued on the second'], 'woken when the first released the session')
  })
  await t.test('an instance that stops ends its lease', async (t) => {
    const third = await buildTestApp(t, { messageStoreUrl: store.url, env: NO_MODEL, schema: app.schema })
    t.equal(await instances(), before + 2)
    await third.close()
    t.equal(await instances(), before + 1, 'its row is gone at once: nothing of it waits for the lease to run out')
  })
})

t.test('config: the lease settings, checked at start-up', async (t) => {
  const base = { INTERNAL_TOKEN: 'x'.repeat(32), DATA_DIR: 'memory://' }
  const config = loadConfig(base)
  t.same(
    [
      config.ONE_RUN_PER_SESSION,
      config.RUN_SESSION_LEASE_MS,
      config.RUN_SESSION_HEARTBEAT_MS,
      config.RUN_SESSION_POLL_MS,
    ],
    [true, 5000, 1000, 1000],
    'the defaults',
  )
  t.equal(loadConfig({ ...base, ONE_RUN_PER_SESSION: 'false' }).ONE_RUN_PER_SESSION, false)
  t.throws(
    () => loadConfig({ ...base, RUN_SESSION_LEASE_MS: '3000', RUN_SESSION_HEARTBEAT_MS: '2000' }),
    { message: 'RUN_SESSION_HEARTBEAT_MS (2000) must be at most half of RUN_SESSION_LEASE_MS (3000)' },
    'a heartbeat slower than half the lease would let a live instance lose its holds',
  )
  for (const [name, value] of [
    ['RUN_SESSION_LEASE_MS', '100'],
    ['RUN_SESSION_POLL_MS', 'soon'],
    ['ONE_RUN_PER_SESSION', 'maybe'],
  ]) {
    t.throws(() => loadConfig({ ...base, [name as string]: value }), new RegExp(name as string), `${name}=${value}`)
  }
})
