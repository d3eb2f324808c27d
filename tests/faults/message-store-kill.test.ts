// Fault: the message-store is killed (SIGKILL) while runs are under way, then started again on the same
// port and data. Every run answers either 200 with all its messages stored, or a clear 503 (the run-service
// retries the store a few times, then gives up). Afterwards every message of every acknowledged run is
// stored exactly once, and no failed run left a reply that looks complete: a reply whose write committed
// as the store died (its answer lost) is settled as failed by the run-service once the store is back.

import { KEY_A, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import { memoryEchoId, type RunOutcome, startLoad, summary, verifyRunsSettled } from '../helpers/load.js'

const stack = await startProcessStack(t, { persistentData: true })
const flowId = await memoryEchoId(stack.gatewayUrl, KEY_A)

const ok = (outcomes: readonly RunOutcome[]) => outcomes.filter((o) => o.acknowledged)

t.test('SIGKILL of the message-store under load: 200 with everything stored, or 503', async (t) => {
  const load = startLoad({
    gatewayUrl: stack.gatewayUrl,
    key: KEY_A,
    flowId,
    streamEvery: 0,
    prefix: 'ms-kill',
  })
  try {
    await load.until('30 runs acknowledged', (o) => ok(o).length >= 30)
    const exit = await stack.kill('message-store', 'SIGKILL')
    t.equal(exit.signal, 'SIGKILL', 'the message-store was killed')
    const killedAt = Date.now()
    await load.until(
      '20 runs failed after the kill',
      (o) => o.filter((x) => x.at > killedAt && !x.acknowledged).length >= 20,
    )
    await stack.restart('message-store')
    const restartedAt = Date.now()
    await load.until(
      '30 runs acknowledged after the restart',
      (o) => ok(o.filter((x) => x.at > restartedAt)).length >= 30,
    )
  } finally {
    await load.stop()
  }
  const outcomes = load.outcomes
  t.comment(`runs: ${outcomes.length} (${summary(outcomes)})`)

  // Every answer is a 200 with the reply, or a 503 in the error envelope naming the message-store.
  const unclear = outcomes.filter(
    (o) => !o.acknowledged && !(o.status === 503 && o.failure === 'RUNSVC_MESSAGE_STORE_UNAVAILABLE'),
  )
  t.same(
    unclear.map((o) => `${o.sessionId}: ${o.status} ${o.failure}`),
    [],
    'every run answered 200 or 503 RUNSVC_MESSAGE_STORE_UNAVAILABLE',
  )
  t.ok(outcomes.filter((o) => o.status === 503).length >= 20, 'the outage was seen as 503s')

  // Writes cut off by the kill are settled by the run-service's next rounds (every second by default)
  // once the store answers: read everything back until no failed run shows a complete reply (at most 30 s).
  const verified = await verifyRunsSettled(stack.gatewayUrl, KEY_A, flowId, outcomes)
  t.same(verified.problems, [], 'acknowledged runs stored exactly once; no failed run has a complete reply')
  t.equal(verified.acknowledged, ok(outcomes).length)
  t.equal(verified.messagesVerified, 2 * verified.acknowledged, 'two messages per acknowledged run, checked')
  t.comment(
    `measured: ${outcomes.length} runs, ${verified.acknowledged} answered 200, ${verified.failed} answered 503, ` +
      `${verified.messagesVerified} messages verified, ${verified.failedWithUserMessage} failed runs kept their user message, ` +
      `${verified.settledFailed} messages of failed runs settled as failed, ${verified.settledReplies} of them replies ` +
      '(unconfirmed writes: cut at the kill or refused while the store was down)',
  )
})
