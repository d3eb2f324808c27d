// Fault: SIGTERM to each service in turn (message-store, run-service, gateway) while runs are under way.
// The service drains: the runs in flight finish, or fail cleanly (a 503 in the error envelope, an `error`
// event, or a refused connection) — never a stream cut short or a hung request; it exits 0 within its
// close-with-grace delay (10 s; past it, close-with-grace exits 1); and nothing acknowledged is lost.

import { KEY_A, type ServiceName, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import { memoryEchoId, type RunOutcome, startLoad, summary, verifyRuns } from '../helpers/load.js'

const stack = await startProcessStack(t, { persistentData: true })
const flowId = await memoryEchoId(stack.gatewayUrl, KEY_A)

/** A failure the caller can act on: a 503 envelope, an `error` event, or no connection at all. */
function cleanFailure(outcome: RunOutcome): boolean {
  if (outcome.status === 503 && /^[A-Z_]+_(UNAVAILABLE|SHUTTING_DOWN)$/.test(outcome.failure ?? '')) return true
  if (outcome.status === 200 && outcome.failure === 'stream-error') return true
  // No answer: the connection was refused, or closed by the stopping server before it took the request.
  return outcome.status === undefined && /ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET/.test(outcome.failure ?? '')
}

const SERVICES: ServiceName[] = ['message-store', 'run-service', 'gateway']

for (const name of SERVICES) {
  t.test(`SIGTERM to the ${name} under load: drains, exits 0, nothing acknowledged lost`, async (t) => {
    const load = startLoad({
      gatewayUrl: stack.gatewayUrl,
      key: KEY_A,
      flowId,
      streamEvery: 3,
      prefix: `term-${name}`,
    })
    let drainMs = 0
    try {
      await load.until('20 runs acknowledged', (o) => o.filter((x) => x.acknowledged).length >= 20)
      const signalledAt = Date.now()
      const exit = await stack.kill(name, 'SIGTERM')
      drainMs = Date.now() - signalledAt
      t.same(exit, { code: 0, signal: null }, `the ${name} exited 0 on SIGTERM`)
    } finally {
      await load.stop()
    }
    const outcomes = load.outcomes
    t.comment(`runs: ${outcomes.length} (${summary(outcomes)})`)
    const unclean = outcomes.filter((o) => !o.acknowledged && !cleanFailure(o))
    t.same(
      unclean.map((o) => `${o.sessionId}${o.stream ? ' (stream)' : ''}: ${o.status ?? '-'} ${o.failure}`),
      [],
      'every run was acknowledged or failed cleanly',
    )

    await stack.restart(name)
    const verified = await verifyRuns(stack.gatewayUrl, KEY_A, flowId, outcomes)
    t.same(verified.problems, [], 'every acknowledged run is stored exactly once; no failed run has a complete reply')
    t.equal(verified.messagesVerified, 2 * verified.acknowledged, 'two messages per acknowledged run, checked')
    t.comment(
      `measured: SIGTERM ${name}: drained and exited in ${drainMs} ms with 8 runs at a time; ` +
        `${outcomes.length} runs, ${verified.acknowledged} acknowledged, ${verified.failed} failed cleanly, ` +
        `${verified.messagesVerified} messages verified`,
    )

    // Back in service: a run goes through.
    const after = startLoad({
      gatewayUrl: stack.gatewayUrl,
      key: KEY_A,
      flowId,
      concurrency: 1,
      maxRuns: 1,
      prefix: `after-${name}`,
    })
    const [one] = await after.stop()
    t.ok(one?.acknowledged, `a run after the ${name}'s restart succeeds (${one?.status} ${one?.failure ?? ''})`)
  })
}
