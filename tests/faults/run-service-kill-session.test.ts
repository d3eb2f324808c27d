// One run at a time per session (issue 15) through the gateway, on the services as real processes: runs sent at
// once on one session (spread by the gateway over the run-service instances) take turns, and `reject` is a 409.
// Then the fault: a run-service instance is killed (SIGKILL) while one of its runs holds a session. The session must not stay blocked: once the dead instance's lease runs out
// (RUN_SESSION_LEASE_MS, default 5 s) the next run on the session goes on. On the Postgres the test command found:
// two run-service instances, the second's run waits in the shared queue and takes over; on PGlite (one process
// only): the instance is restarted on its data, and a run after the restart takes over the dead one's hold.
//
// Real child processes; the run that holds the session is a streamed one held by the fake model after its first
// token. The waiting run's request is bounded by WAIT_BOUND_MS, well above the lease plus a poll: a session
// that stayed blocked fails the test.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  KEY_A,
  repoRoot as root,
  startFakeModel,
  startProcessStack,
  TENANT_A,
  testBackends,
  waitFor,
  withPg,
} from '@session-runtime/stack'
import t from 'tap'
import { sessionMessages } from '../helpers/load.js'

const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
const STEP_MS = 30_000
/** The waiting run's bound: the default lease (5 s) and poll (1 s), with room for a loaded machine. */
const WAIT_BOUND_MS = 20_000
const { postgresUrl } = testBackends()
const twoInstances = postgresUrl !== undefined
t.comment(twoInstances ? 'two run-service instances on Postgres' : 'one run-service instance on PGlite, restarted')

const model = await startFakeModel(t, { reply: (call) => `Reply to: ${call.user}` })
model.hold()
const stack = await startProcessStack(t, {
  persistentData: true,
  modelUrl: model.url,
  instances: twoInstances ? { 'run-service': 2 } : {},
})
const victim = twoInstances ? 1 : 0

async function gatewayCall(method: string, path: string, body?: unknown) {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_MS),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** A run sent straight to run-service instance `index` (as the gateway would), not through the rotation. */
function runOn(index: number, payload: Record<string, unknown>, opts: { stream?: boolean; timeoutMs?: number } = {}) {
  const instance = stack.instances['run-service'][index]
  if (!instance) throw new Error(`no run-service instance ${index}`)
  return fetch(`${instance.url}/api/v1/run/${flowId}${opts.stream ? '?stream=true' : ''}`, {
    method: 'POST',
    headers: { 'x-internal-token': stack.internalToken, 'x-tenant-id': TENANT_A, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
    signal: AbortSignal.timeout(opts.timeoutMs ?? STEP_MS),
  })
}

const imported = await gatewayCall(
  'POST',
  '/api/v1/flows/',
  JSON.parse(readFileSync(join(fixturesDir, 'langflow-memory-chatbot.json'), 'utf8')),
)
if (imported.status !== 201) throw new Error(`import: ${imported.status} ${JSON.stringify(imported.body)}`)
const flowId = imported.body.id as string
const SESSION = 'held-by-the-dead'

/** The reader of a streamed run's body, once its first token arrived (the run is in flight on its session). */
async function readUntilFirstToken(held: Response): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const reader = (held.body as ReadableStream<Uint8Array>).getReader()
  let seen = ''
  while (!seen.includes('"event":"token"')) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`the held run ended early: ${seen}`)
    seen += new TextDecoder().decode(value)
  }
  return reader
}

t.test('through the gateway: 20 runs at once on one session take turns; reject is a 409', async (t) => {
  const RUNS = 20
  const inputs = Array.from({ length: RUNS }, (_, i) => `at once ${i}`)
  const answers = await Promise.all(
    inputs.map((input) =>
      gatewayCall('POST', '/api/v1/run/memory-echo', { input_value: input, session_id: 'together' }),
    ),
  )
  t.same(
    answers.map((a) => a.status),
    inputs.map(() => 200),
  )
  const listed = answers
    .map((a) => {
      const outputs = a.body.outputs as { outputs: { outputs: { message: { message: string } } }[] }[]
      const text = outputs[0]?.outputs[0]?.outputs.message.message ?? ''
      return (text.split('so far:\n')[1] ?? '').split('\n').map((line) => line.replace(/^- /, ''))
    })
    .sort((a, b) => a.length - b.length)
  t.same(
    listed.map((list) => list.length),
    inputs.map((_, i) => i + 1),
    'the replies list 1, 2, …, 20 inputs: each run saw every earlier one',
  )
  const last = listed.at(-1) ?? []
  t.same([...last].sort(), [...inputs].sort(), 'every input once')
  t.ok(
    listed.every((list) => list.every((input, i) => last[i] === input)),
    'in one order',
  )

  // a run held by the model (the memory chatbot flow) keeps its session busy: reject is a 409 at the gateway
  const held = await fetch(`${stack.gatewayUrl}/api/v1/run/${flowId}?stream=true`, {
    method: 'POST',
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
    body: JSON.stringify({ input_value: 'hold on', session_id: 'busy' }),
    signal: AbortSignal.timeout(STEP_MS),
  })
  const reader = await readUntilFirstToken(held)
  for (let i = 0; i < 4; i++) {
    const refused = await gatewayCall('POST', `/api/v1/run/${flowId}`, {
      input_value: 'me too',
      session_id: 'busy',
      multitask_strategy: 'reject',
    })
    t.equal(refused.status, 409, `refused (${i + 1}: whichever instance the gateway picked)`)
    t.equal(refused.body.code, 'RUNSVC_SESSION_BUSY')
  }
  const bad = await gatewayCall('POST', `/api/v1/run/${flowId}`, { input_value: 'x', multitask_strategy: 'later' })
  t.equal(bad.status, 422, 'an unknown multitask_strategy: 422')
  t.match(bad.body.detail, /multitask_strategy/)
  await reader.cancel().catch(() => {}) // the client goes away: the run is cancelled, the session freed
  if (twoInstances) {
    await waitFor(
      () =>
        withPg(postgresUrl as string, async (client) => {
          const { rows } = await client.query(
            `SELECT 1 FROM "${stack.schemas.runService}".session_run_holders WHERE session_id = 'busy'`,
          )
          return rows.length === 0
        }),
      'the session is released once its client went away',
    )
  }
  const stored = await sessionMessages(stack.gatewayUrl, KEY_A, flowId, 'busy')
  t.same(
    stored.map((m) => [m.sender, m.text]),
    [['User', 'hold on']],
    'the refused runs stored nothing; the cancelled one its question only',
  )
})

t.test('an instance killed while its run holds a session blocks it for a few seconds at most', async (t) => {
  // the victim's run holds the session: its question is stored, the model is half-way through the reply
  const held = await runOn(victim, { input_value: 'first question', session_id: SESSION }, { stream: true })
  t.equal(held.status, 200)
  const reader = await readUntilFirstToken(held)
  reader.read().catch(() => {}) // the connection breaks when the victim dies

  let waiting: Promise<Response> | undefined
  if (twoInstances) {
    const refused = await runOn(0, { input_value: 'x', session_id: SESSION, multitask_strategy: 'reject' })
    t.equal(refused.status, 409, 'the other instance refuses a reject run: the session is held')
    t.equal(((await refused.json()) as { code: string }).code, 'RUNSVC_SESSION_BUSY')
    waiting = runOn(0, { input_value: 'second question', session_id: SESSION }, { timeoutMs: WAIT_BOUND_MS })
    const waiters = () =>
      withPg(postgresUrl as string, async (client) => {
        const { rows } = await client.query(`SELECT 1 FROM "${stack.schemas.runService}".session_run_waiters`)
        return rows.length === 1
      })
    await waitFor(waiters, 'the second instance’s run waits in the shared queue')
  }

  const exit = await stack.kill('run-service', 'SIGKILL', victim)
  t.equal(exit.signal, 'SIGKILL', 'the holder’s instance was killed')
  const killedAt = performance.now()
  model.release()
  if (!twoInstances) {
    await stack.restart('run-service', victim)
    waiting = runOn(0, { input_value: 'second question', session_id: SESSION }, { timeoutMs: WAIT_BOUND_MS })
  }
  const res = await (waiting as Promise<Response>)
  const body = await res.text()
  t.equal(res.status, 200, `the waiting run went on (${body.slice(0, 200)})`)
  t.comment(`measured: the session was free ${Math.round(performance.now() - killedAt)} ms after the SIGKILL`)
  t.match(model.calls.at(-1)?.system ?? '', 'first question', 'its Memory has the dead run’s stored question')

  const stored = await sessionMessages(stack.gatewayUrl, KEY_A, flowId, SESSION)
  t.same(
    stored.filter((m) => !m.error).map((m) => [m.sender, m.text]),
    [
      ['User', 'first question'],
      ['User', 'second question'],
      ['Machine', 'Reply to: second question'],
    ],
    'the session: both questions and the one complete reply',
  )
  const after = await runOn(0, { input_value: 'third', session_id: SESSION, multitask_strategy: 'reject' })
  t.equal(after.status, 200, 'and the session is free again once that run answered')
})
