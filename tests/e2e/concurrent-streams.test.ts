// Many streamed runs at once, on the three services as real processes (startProcessStack of packages/stack):
// 300 streamed runs of the basic-prompting flow through the gateway, each in its own session, all in flight
// together — the model holds every reply after its first word until all 300 calls have reached it, so no pool
// or queue on the way (gateway → run-service, run-service → model, run-service → message-store) may hold a run
// back until another one ends. Then every stream must end with its `end` event carrying the full reply, and
// every session must hold the user's message and that reply, stored once. Not timed: pnpm bench measures
// (packages/bench/whole-stack/streams.ts).

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fakeReply, KEY_A, repoRoot, startFakeModel, startProcessStack, waitFor } from '@session-runtime/stack'
import t from 'tap'
import { runOnce, summary, verifyRuns } from '../helpers/load.js'

const RUNS = 300
const fixturesDir = process.env.FIXTURES_DIR ?? join(repoRoot, '../shared/fixtures')

const model = await startFakeModel(t)
model.hold()
const stack = await startProcessStack(t, { modelUrl: model.url })

const imported = await fetch(`${stack.gatewayUrl}/api/v1/flows/`, {
  method: 'POST',
  headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
  body: readFileSync(join(fixturesDir, 'langflow-basic-prompting.json'), 'utf8'),
  signal: AbortSignal.timeout(30_000),
})
if (imported.status !== 201) throw new Error(`import: ${imported.status} ${await imported.text()}`)
const flowId = ((await imported.json()) as { id: string }).id

t.test(`${RUNS} streamed runs in flight at once all end with end and are stored once`, async (t) => {
  const opts = { gatewayUrl: stack.gatewayUrl, key: KEY_A, flowId, runTimeoutMs: 60_000 }
  const runs = Array.from({ length: RUNS }, (_, i) => runOnce(opts, i, `streams-${i}`, true))
  try {
    await waitFor(() => model.calls.length === RUNS, `all ${RUNS} runs at the model at once`, 30_000)
  } finally {
    t.comment(`${model.calls.length} runs reached the model before any was let go on`)
    model.release()
  }
  const outcomes = await Promise.all(runs)
  t.equal(outcomes.filter((o) => o.acknowledged).length, RUNS, `every stream ended with end (${summary(outcomes)})`)
  t.same(
    outcomes.filter((o) => o.reply?.text !== fakeReply(o.input)).map((o) => o.sessionId),
    [],
    'every end event carries the full reply',
  )
  const verified = await verifyRuns(stack.gatewayUrl, KEY_A, flowId, outcomes)
  t.same(verified.problems, [], 'every session holds its question and its reply, once')
  t.equal(verified.messagesVerified, 2 * RUNS)
})
