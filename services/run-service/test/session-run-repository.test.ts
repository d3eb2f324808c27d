// The per-session rule's store (src/domain/session-run-repository.ts) on the run-service's real tables (Postgres
// when the test command found it, else PGlite): takes and releases that arrive together go in one statement,
// and each session's outcome is still the one its own statement would have had.
import { randomUUID } from 'node:crypto'
import type { Queryable } from '@session-runtime/db'
import t from 'tap'
import { sessionRunRepository } from '../src/domain/session-run-repository.js'
import type { SessionKey } from '../src/domain/session-runs.js'
import { buildTestApp, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

const app = await buildTestApp(t, { env: { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', OPENAI_API_KEY: '' } })

/** `app.db`, counting the statements sent through it. */
function counted(): Queryable & { statements: string[] } {
  const statements: string[] = []
  return {
    statements,
    query(sql, params) {
      statements.push(sql)
      return app.db.query(sql, params)
    },
  }
}

/** A repository of a new live instance on `db`. */
async function instance(db: Queryable) {
  const repository = sessionRunRepository(db, randomUUID(), app.db.schema)
  await repository.heartbeat(60_000)
  return repository
}

const FLOW = randomUUID()
const keys = (tenant: string, n: number): SessionKey[] =>
  Array.from({ length: n }, (_, i) => ({ tenant, flowId: FLOW, sessionId: `s${i}` }))
const holders = async (tenant: string) =>
  (
    await app.db.query<{ session_id: string; ticket: string }>(
      'SELECT session_id, ticket::text AS ticket FROM session_run_holders WHERE tenant_id = $1 ORDER BY session_id',
      [tenant],
    )
  ).rows

t.test('40 takes at once: fewer statements than takes, each session held once with its own ticket', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const db = counted()
  const one = await instance(db)
  db.statements.length = 0
  const tickets = await Promise.all(keys(tenant, 40).map((key) => one.take(key)))
  t.equal(tickets.filter((ticket) => ticket !== undefined).length, 40, 'every free session was taken')
  t.equal(new Set(tickets).size, 40, 'each with a ticket of its own')
  t.ok(db.statements.length < 40, `coalesced: ${db.statements.length} statements for 40 takes`)
  const held = await holders(tenant)
  t.same(
    held.map((h) => [h.session_id, h.ticket]),
    keys(tenant, 40)
      .map((key, i) => [key.sessionId, tickets[i]])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    'the store holds each session with the ticket its caller got',
  )

  // another instance's takes of the same sessions, together, all find them held
  const other = await instance(app.db)
  const refused = await Promise.all(keys(tenant, 40).map((key) => other.take(key)))
  t.same(refused, Array(40).fill(undefined), 'held sessions are not taken by another live instance')

  // releases together: one statement for many, and every session is free again
  db.statements.length = 0
  await Promise.all(keys(tenant, 40).map((key, i) => one.release(key, String(tickets[i]))))
  t.ok(db.statements.length < 40, `coalesced: ${db.statements.length} statements for 40 releases`)
  t.same(await holders(tenant), [], 'nothing held after the releases')
  const again = await Promise.all(keys(tenant, 40).map((key) => other.take(key)))
  t.equal(again.filter((ticket) => ticket !== undefined).length, 40, 'the other instance takes them now')
})

t.test('a release with a stale ticket frees nothing, even beside releases that do', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const one = await instance(app.db)
  const [a, b] = keys(tenant, 2) as [SessionKey, SessionKey]
  const [ticketA, ticketB] = await Promise.all([one.take(a), one.take(b)])
  await Promise.all([one.release(a, String(ticketA)), one.release(b, String(Number(ticketB) + 1_000_000))])
  t.same(
    (await holders(tenant)).map((h) => h.session_id),
    ['s1'],
    'only the session whose ticket matched was released',
  )
})

t.test('two takes of one session at once (one instance): exactly one holds it', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const one = await instance(app.db)
  const [key] = keys(tenant, 1) as [SessionKey]
  const tickets = await Promise.all([one.take(key), one.take(key), one.take(key)])
  t.equal(tickets.filter((ticket) => ticket !== undefined).length, 1, 'one take won')
  t.equal((await holders(tenant)).length, 1)
})

t.test('a session with a live waiter is not taken, beside sessions that are', async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const one = await instance(app.db)
  const other = await instance(app.db)
  const [busy, free] = keys(tenant, 2) as [SessionKey, SessionKey]
  const held = await other.take(busy)
  const waiter = await other.join(busy)
  await other.release(busy, String(held))
  const [busyTicket, freeTicket] = await Promise.all([one.take(busy), one.take(free)])
  t.equal(busyTicket, undefined, 'the waiter goes first')
  t.type(freeTicket, 'string', 'the free session was taken in the same batch')
  t.ok(await other.promote(busy, waiter), 'the waiter is promoted')
})

t.test("one bad key does not fail the others' takes", async (t) => {
  const tenant = `tenant-${randomUUID()}`
  const one = await instance(app.db)
  const good = keys(tenant, 5)
  const bad: SessionKey = { tenant, flowId: 'not-a-uuid', sessionId: 'x' }
  const outcomes = await Promise.allSettled([...good, bad].map((key) => one.take(key)))
  t.equal(outcomes.slice(0, 5).filter((o) => o.status === 'fulfilled' && o.value !== undefined).length, 5)
  t.equal(outcomes[5]?.status, 'rejected', 'only the bad key failed')
})
