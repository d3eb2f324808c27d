// Fault: a run-service instance is killed (SIGKILL) while one of its runs holds a session (one run at a time per
// session, issue 15). The session must not stay blocked: once the dead instance's lease runs out
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

t.test('an instance killed while its run holds a session blocks it for a few seconds at most', async (t) => {
  // the victim's run holds the session: its question is stored, the model is half-way through the reply
  const held = await runOn(victim, { input_value: 'first question', session_id: SESSION }, { stream: true })
  t.equal(held.status, 200)
  const reader = (held.body as ReadableStream<Uint8Array>).getReader()
  let seen = ''
  while (!seen.includes('"event":"token"')) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`the held run ended early: ${seen}`)
    seen += new TextDecoder().decode(value)
  }
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
