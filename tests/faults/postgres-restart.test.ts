// Postgres restarted under load: this file runs its OWN Postgres server (initdb into a temporary
// directory, `postgres` on a free port of 127.0.0.1; as the `postgres` OS user when the test runs as
// root, since Postgres refuses root), and the real message-store app (in-process, `inject`) on it, with
// its default in-process history cache. Writers store messages through the internal write API and, like
// the run-service, retry a message that was not acknowledged with the same id; readers read histories,
// the monitor list and /ready. Postgres is stopped twice, `fast` (SIGINT: sessions terminated, clean
// shutdown) and `immediate` (SIGQUIT: a crash, WAL recovery at the next start), and started again on
// the same data directory and port. Checked: during the outage writes and reads answer 503
// MSGSTORE_UNAVAILABLE (never another 5xx, never a 2xx for a write that was not stored); the app
// recovers by itself (no restart: the same app object throughout); every acknowledged message is in
// Postgres exactly once; every read that started after an acknowledgement contains that message; and
// afterwards the cached and uncached histories agree with the table.
import { randomUUID } from 'node:crypto'
import { postgresBin, startPostgresServer } from '@session-runtime/stack'
import t from 'tap'
import { createPgDatabase } from '../../packages/db/src/pg-database.js'
import { buildApp } from '../../services/message-store/src/app.js'
import { loadConfig } from '../../services/message-store/src/config.js'
import { INTERNAL_TOKEN, internalHeaders } from '../../services/message-store/test/helpers/app.js'

const TENANT = 'tenant-a'
const SCHEMA = 'faults'
const WRITERS = 6
const READERS = 2
/** Bounds: of one request, of each wait, of the load loops. */
const REQUEST_TIMEOUT_MS = 20_000
const WAIT_MS = 30_000
const MAX_ITERATIONS = 3000
/** How long each outage is held once the app has answered 503s. */
const OUTAGE_MS = 1000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(20)
  }
}

// ---- the load -------------------------------------------------------------------------------------

interface Outcomes {
  /** Message id -> session of every message ever sent. */
  sent: Map<string, string>
  /** Acknowledged (2xx) messages, per session, in acknowledgement order. */
  acked: Map<string, string[]>
  ackedAt: Map<string, number>
  /** 2xx answers that were a retry of an unacknowledged message (idempotent replays). */
  replayed: number
  writes503: number
  reads503: number
  reads2xx: number
  ready503: number
  /** Anything else: a 500, another status, a 503 without the unavailable code, a timeout, a read missing an acked message. */
  failures: string[]
  lastAckAt: number
}

type App = Awaited<ReturnType<typeof buildApp>>

async function call(app: App, opts: object): Promise<{ status: number; body: string }> {
  let timer: NodeJS.Timeout | undefined
  const res = await Promise.race([
    app.inject({ ...opts, headers: internalHeaders(TENANT) } as never),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS)
    }),
  ]).finally(() => clearTimeout(timer))
  return { status: res.statusCode, body: res.body }
}

const isUnavailable = (status: number, body: string) => status === 503 && body.includes('"MSGSTORE_UNAVAILABLE"')

function writer(app: App, o: Outcomes, flow_id: string, session: string, stop: () => boolean) {
  return async () => {
    let pending: { id: string; text: string }[] = []
    let n = 0
    let retrying = false
    // After the stop, a writer still retries its unacknowledged message, for a bounded time.
    let drainUntil = 0
    for (let i = 0; i < MAX_ITERATIONS; i++) {
      if (stop()) {
        drainUntil ||= Date.now() + 10_000
        if (pending.length === 0 || Date.now() > drainUntil) break
      }
      if (pending.length === 0) {
        // One or two messages per request; a retry sends exactly the same ones again.
        const count = i % 3 === 0 ? 2 : 1
        pending = Array.from({ length: count }, () => ({ id: randomUUID(), text: `${session}#${++n}` }))
        for (const m of pending) o.sent.set(m.id, session)
        retrying = false
      }
      const messages = pending.map((m) => ({ ...m, flow_id, session_id: session, sender: 'User', sender_name: 'User' }))
      try {
        const res =
          messages.length === 1
            ? await call(app, { method: 'POST', url: '/internal/messages', payload: messages[0] })
            : await call(app, { method: 'POST', url: '/internal/messages/batch', payload: { messages } })
        if (res.status === 200 || res.status === 201) {
          const now = Date.now()
          for (const m of pending) {
            o.acked.get(session)?.push(m.id)
            o.ackedAt.set(m.id, now)
          }
          o.lastAckAt = now
          if (retrying) o.replayed++
          pending = []
        } else if (isUnavailable(res.status, res.body)) {
          o.writes503++
          retrying = true
          await sleep(50)
        } else {
          o.failures.push(`write: ${res.status} ${res.body.slice(0, 200)}`)
          pending = []
        }
      } catch (err) {
        o.failures.push(`write: ${(err as Error).message}`)
        await sleep(50)
      }
      await sleep(5)
    }
  }
}

function reader(app: App, o: Outcomes, flow_id: string, sessions: string[], stop: () => boolean) {
  return async () => {
    for (let i = 0; i < MAX_ITERATIONS && !stop(); i++) {
      const session = sessions[i % sessions.length] as string
      // Everything acknowledged before the read started must be in its answer.
      const mustHave = [...(o.acked.get(session) ?? [])]
      const kind = i % 3
      try {
        const res =
          kind === 0
            ? await call(app, {
                method: 'GET',
                url: '/internal/history',
                query: { flow_id, session_id: session, limit: '1000' },
              })
            : kind === 1
              ? await call(app, {
                  method: 'GET',
                  url: '/api/v1/monitor/messages',
                  query: { flow_id, session_id: session, limit: '1000' },
                })
              : await call(app, { method: 'GET', url: '/ready' })
        if (res.status === 200) {
          o.reads2xx++
          if (kind !== 2) {
            const ids = (JSON.parse(res.body) as { id: string }[]).map((m) => m.id)
            const missing = mustHave.filter((id) => !ids.includes(id))
            if (missing.length > 0) o.failures.push(`read ${session}: ${missing.length} acknowledged messages missing`)
            if (new Set(ids).size !== ids.length) o.failures.push(`read ${session}: duplicates`)
          }
        } else if (kind === 2 && res.status === 503 && res.body.includes('"postgres":"down"')) {
          o.ready503++
        } else if (kind !== 2 && isUnavailable(res.status, res.body)) {
          o.reads503++
        } else {
          o.failures.push(`read: ${res.status} ${res.body.slice(0, 200)}`)
        }
      } catch (err) {
        o.failures.push(`read: ${(err as Error).message}`)
      }
      await sleep(10)
    }
  }
}

const bin = await postgresBin()

if (bin) {
  t.test('Postgres stopped (fast, then immediate) and restarted under load', async (t) => {
    const pg = await startPostgresServer(t, bin)
    t.comment(pg.describe())
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN,
      DATA_DIR: 'memory://',
      DATABASE_URL: pg.url,
      DATABASE_SCHEMA: SCHEMA,
      DATABASE_POOL_MAX: '4',
    } as NodeJS.ProcessEnv)
    const app = await buildApp(config)
    t.teardown(() => app.close())
    await app.ready()
    t.equal(app.historyCache?.kind, 'memory', 'the default in-process history cache')

    const flow_id = randomUUID()
    const sessions = Array.from({ length: WRITERS }, (_, i) => `w${i}`)
    const o: Outcomes = {
      sent: new Map(),
      acked: new Map(sessions.map((s) => [s, []])),
      ackedAt: new Map(),
      replayed: 0,
      writes503: 0,
      reads503: 0,
      reads2xx: 0,
      ready503: 0,
      failures: [],
      lastAckAt: 0,
    }
    const ackedCount = () => o.ackedAt.size
    let stopped = false
    const stop = () => stopped
    const workers = [
      ...sessions.map((s) => writer(app, o, flow_id, s, stop)()),
      ...Array.from({ length: READERS }, () => reader(app, o, flow_id, sessions, stop)()),
    ]
    const results: Record<string, unknown>[] = []
    try {
      await waitFor(() => ackedCount() >= 40, 'the first acknowledged writes')
      for (const mode of ['fast', 'immediate'] as const) {
        const before503 = o.writes503
        const stoppedAt = Date.now()
        await pg.stop(mode)
        const downAt = Date.now()
        await waitFor(() => o.writes503 >= before503 + 5 && o.ready503 > 0, `503s after the ${mode} stop`)
        const first503Ms = Date.now() - downAt
        await sleep(OUTAGE_MS)
        const acksDuringOutage = [...o.ackedAt.values()].filter((at) => at > downAt).length
        await pg.start()
        const upAt = Date.now()
        await waitFor(() => o.lastAckAt > upAt, `an acknowledged write after the ${mode} restart`)
        const recoveryMs = o.lastAckAt - upAt
        const ready = await call(app, { method: 'GET', url: '/ready' })
        t.equal(ready.status, 200, `after the ${mode} restart /ready is 200 again, with no app restart`)
        const target = ackedCount() + 40
        await waitFor(() => ackedCount() >= target, `more acknowledged writes after the ${mode} restart`)
        results.push({
          mode,
          stopMs: downAt - stoppedAt,
          outageMs: upAt - downAt,
          writes503: o.writes503 - before503,
          acksDuringOutage,
          firstAckAfterStartMs: recoveryMs,
          first503Ms,
        })
        t.equal(acksDuringOutage, 0, `no write was acknowledged while Postgres was down (${mode})`)
      }
    } finally {
      stopped = true
      await Promise.all(workers)
    }

    t.same(
      o.failures.slice(0, 5),
      [],
      `no 500, no other status, no timeout, no read missing an acked message (${o.failures.length})`,
    )
    t.ok(
      o.writes503 > 0 && o.reads503 > 0 && o.ready503 > 0,
      'writes, reads and /ready answered 503 during the outages',
    )

    // Every acknowledged message is in Postgres exactly once; nothing else is there.
    const check = await createPgDatabase({
      connectionString: pg.url,
      schema: SCHEMA,
      max: 1,
      statementTimeoutMs: 10_000,
      connectTimeoutMs: 5000,
      statementPrefix: 'check_',
    })
    t.teardown(() => check.close())
    const { rows } = await check.query<{ id: string; session_id: string; text: string }>(
      'SELECT id::text, session_id, text FROM messages WHERE tenant_id = $1 AND flow_id = $2 ORDER BY ts, seq',
      [TENANT, flow_id],
    )
    const acked = [...o.ackedAt.keys()]
    const stored = new Map<string, number>()
    for (const row of rows) stored.set(row.id, (stored.get(row.id) ?? 0) + 1)
    t.same(
      acked.filter((id) => stored.get(id) !== 1),
      [],
      `every acknowledged message (${acked.length}) is stored exactly once`,
    )
    t.same(
      rows.filter((r) => !o.sent.has(r.id)).map((r) => r.id),
      [],
      'no row that was never sent',
    )
    t.equal(new Set(rows.map((r) => r.text)).size, rows.length, 'no message stored twice under two ids')
    const unackedStored = rows.filter((r) => !o.ackedAt.has(r.id)).length
    const counts = await check.query<{ session_id: string; message_count: number }>(
      'SELECT session_id, message_count FROM sessions WHERE tenant_id = $1 AND flow_id = $2',
      [TENANT, flow_id],
    )
    for (const c of counts.rows) {
      t.equal(
        Number(c.message_count),
        rows.filter((r) => r.session_id === c.session_id).length,
        `the session summary of ${c.session_id} counts its rows`,
      )
    }

    // Each session: the cached history, the uncached monitor list and the table agree, message for message.
    for (const session of sessions) {
      const inTable = rows.filter((r) => r.session_id === session).map((r) => r.id)
      const q = { flow_id, session_id: session, limit: '1000' }
      const cached = await call(app, { method: 'GET', url: '/internal/history', query: q })
      const uncached = await call(app, { method: 'GET', url: '/api/v1/monitor/messages', query: q })
      const ids = (body: string) => (JSON.parse(body) as { id: string }[]).map((m) => m.id)
      t.same(ids(cached.body), inTable, `${session}: the history equals the table (${inTable.length} messages)`)
      t.same(ids(uncached.body), inTable, `${session}: the monitor list equals the table`)
    }

    t.comment(
      `RESULT ${JSON.stringify(results)}; totals: sent ${o.sent.size}, acknowledged ${acked.length}, ` +
        `replayed acks ${o.replayed}, write 503s ${o.writes503}, read 503s ${o.reads503}, /ready 503s ${o.ready503}, ` +
        `reads 2xx ${o.reads2xx}, stored but never acknowledged ${unackedStored}, failures ${o.failures.length}`,
    )
  })
} else {
  // CI (Debian, postgresql installed) has the binaries; without them this fault cannot be run here.
  t.fail('no Postgres server binaries under /usr/lib/postgresql/<major>/bin: the Postgres restart test cannot run')
}
