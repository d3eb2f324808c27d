// Postgres restarted under a load of runs through the whole stack: the three services as processes on a
// Postgres server of this test's own (startPostgresServer of packages/stack), which the message-store (messages)
// and the run-service (flows, unconfirmed writes) both use. Postgres is stopped `fast`, then `immediate`,
// and started again each time on the same data and port. Checked: during an outage every run answers a
// clear 503 in the error envelope (never a 500, never a hang); the services recover by themselves (the same
// processes throughout); every acknowledged run's messages are stored exactly once; no failed run is left
// with a reply stored as complete.

import { KEY_A, postgresBin, startPostgresServer, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import { memoryEchoId, type RunOutcome, startLoad, summary, verifyRunsSettled } from '../helpers/load.js'

/** 503 codes a run may answer while Postgres is down: the run-service's own database, or the message-store's. */
const OUTAGE_CODES = ['RUNSVC_UNAVAILABLE', 'RUNSVC_MESSAGE_STORE_UNAVAILABLE']

const bin = await postgresBin()

if (bin) {
  t.test('Postgres stopped (fast, then immediate) and restarted under a load of runs', async (t) => {
    const pg = await startPostgresServer(t, bin)
    t.comment(pg.describe())
    t.teardown(() => {
      if (!t.passing()) t.comment(`output of postgres:\n${pg.output()}`)
    })
    const stack = await startProcessStack(t, { postgresUrl: pg.url })
    const pids = Object.values(stack.services).map((s) => s.child.pid)
    const flowId = await memoryEchoId(stack.gatewayUrl, KEY_A)

    const load = startLoad({
      gatewayUrl: stack.gatewayUrl,
      key: KEY_A,
      flowId,
      maxRuns: 2_000,
      streamEvery: 3,
      prefix: 'pg-restart',
    })
    const outages: { mode: string; from: number; to: number }[] = []
    try {
      await load.until('20 runs acknowledged', (o) => o.filter((x) => x.acknowledged).length >= 20)
      for (const mode of ['fast', 'immediate'] as const) {
        const from = Date.now()
        await pg.stop(mode)
        await load.until(
          `15 runs failed after the ${mode} stop`,
          (o) => o.filter((x) => x.at > from && !x.acknowledged).length >= 15,
        )
        await pg.start()
        const to = Date.now()
        outages.push({ mode, from, to })
        await load.until(
          `20 runs acknowledged after the ${mode} restart`,
          (o) => o.filter((x) => x.at > to && x.acknowledged).length >= 20,
        )
      }
    } finally {
      await load.stop()
    }
    const outcomes = load.outcomes
    t.comment(`runs: ${outcomes.length} (${summary(outcomes)})`)

    const failed = outcomes.filter((o) => !o.acknowledged)
    // A streamed run answers 200 before it starts: a failure during it is its `error` event.
    const unclear = failed.filter(
      (o) => !(o.status === 503 && OUTAGE_CODES.includes(o.failure ?? '')) && o.failure !== 'stream-error',
    )
    t.same(
      unclear.map((o) => `${o.sessionId}: ${o.status} ${o.failure}`),
      [],
      `every failed run answered 503 ${OUTAGE_CODES.join(' or ')} (or, streamed, an error event)`,
    )
    for (const { mode, from, to } of outages) {
      const during = outcomes.filter((o) => o.at > from && o.at <= to + 1_000)
      t.ok(
        during.some((o) => o.status === 503),
        `the ${mode} outage was answered with 503s (${summary(during)})`,
      )
      t.ok(
        outcomes.some((o) => o.at > to && o.acknowledged),
        `runs acknowledged again after the ${mode} restart`,
      )
    }
    t.same(
      Object.values(stack.services).map((s) => s.child.pid),
      pids,
      'recovered without restarting any service',
    )

    // Writes cut off by the outage are settled as failed by the run-service once Postgres is back.
    const verified = await verifyRunsSettled(stack.gatewayUrl, KEY_A, flowId, outcomes)
    t.same(verified.problems, [], 'acknowledged runs stored exactly once; no failed run has a complete reply')
    t.equal(verified.messagesVerified, 2 * verified.acknowledged, 'two messages per acknowledged run, checked')
    const ok = (o: RunOutcome) => o.acknowledged
    t.comment(
      `measured: ${outcomes.length} runs, ${outcomes.filter(ok).length} acknowledged, ${failed.length} failed ` +
        `(${summary(failed)}); outages ${outages.map((o) => `${o.mode} ${o.to - o.from} ms`).join(', ')}; ` +
        `${verified.messagesVerified} messages verified, ${verified.settledFailed} messages of failed runs settled as failed`,
    )
  })
} else {
  t.fail(
    'no Postgres server binaries (/usr/lib/postgresql/<major>/bin/initdb); scripts/test.mjs leaves this file out then',
  )
}
