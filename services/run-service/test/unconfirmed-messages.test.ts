// The settler of unconfirmed message writes (src/domain/unconfirmed-messages.ts) on the run-service's real
// table (Postgres, or PGlite without one); the message-store's side is a recording stand-in here (the run
// test unconfirmed-run.test.ts uses the real one).
import { randomUUID } from 'node:crypto'
import type { MessageInput } from '@session-runtime/schemas'
import t from 'tap'
import { unconfirmedMessageRepository } from '../src/domain/unconfirmed-message-repository.js'
import {
  type FailedMessageStore,
  UnconfirmedMessages,
  type UnconfirmedOutbox,
} from '../src/domain/unconfirmed-messages.js'
import { buildTestApp, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

class Unavailable extends Error {}

/** Records what it was asked to settle; `state` decides how it answers. */
class StoreStandIn implements FailedMessageStore {
  state: 'up' | 'down' | 'refusing' = 'up'
  settled: Array<{ tenant: string; ids: string[] }> = []
  async storeFailed(tenant: string, messages: MessageInput[]) {
    if (this.state === 'down') throw new Unavailable('connect ECONNREFUSED')
    if (this.state === 'refusing') throw new Error('409 MSGSTORE_MESSAGE_ID_CONFLICT')
    this.settled.push({ tenant, ids: messages.map((m) => m.id) })
    return messages
  }
}

function message(text: string, id: string = randomUUID()): MessageInput {
  return { id, flow_id: randomUUID(), session_id: 's', sender: 'Machine', sender_name: 'AI', text }
}

const app = await buildTestApp(t)
// The app's own settler works on the same table: stop its rounds, so that only this test's instances do.
await app.unconfirmedMessages.stop()
const outbox = unconfirmedMessageRepository(app.db)
const rowCount = async () =>
  Number((await app.db.query<{ n: string }>('SELECT count(*) AS n FROM unconfirmed_messages')).rows[0]?.n)

function settler(store: FailedMessageStore, box: UnconfirmedOutbox = outbox, batchSize?: number) {
  const warnings: string[] = []
  const counts = { recorded: 0, settled: 0, dropped: 0 }
  const settler = new UnconfirmedMessages({
    outbox: box,
    store,
    isTransient: (err) => err instanceof Unavailable,
    log: { warn: (_obj, msg) => warnings.push(msg) },
    onCount: (outcome, n) => {
      counts[outcome] += n
    },
    ...(batchSize ? { batchSize } : {}),
  })
  return { settler, warnings, counts }
}

t.afterEach(async () => {
  await app.db.query('DELETE FROM unconfirmed_messages')
})

t.test('recorded writes wait in the table while the store is down, then are settled once', async (t) => {
  const store = new StoreStandIn()
  const { settler: s, counts } = settler(store)
  const a = message('a')
  const b = message('b')
  const c = message('c')
  s.record('tenant-a', a)
  s.record('tenant-a', b)
  s.record('tenant-b', c)
  s.record('tenant-a', a)
  t.equal(s.unsavedCount, 3, 'the same write recorded twice is one entry')

  store.state = 'down'
  const down = await s.settle()
  t.same(down, { settled: 0, dropped: 0, storeUnavailable: true })
  t.equal(await rowCount(), 3, 'saved in the table')
  t.equal(s.unsavedCount, 0)
  t.notOk(s.idle)

  store.state = 'up'
  const up = await s.settle()
  t.same(up, { settled: 3, dropped: 0, storeUnavailable: false })
  t.same(
    store.settled.map((call) => [call.tenant, call.ids.sort()]).sort(),
    [
      ['tenant-a', [a.id, b.id].sort()],
      ['tenant-b', [c.id]],
    ].sort(),
    'one call per tenant, each message once',
  )
  t.equal(await rowCount(), 0, 'the table is empty')
  t.ok(s.idle, 'nothing left to do')
  t.same(await s.settle(), { settled: 0, dropped: 0, storeUnavailable: false }, 'an idle round does nothing')
  t.same(counts, { recorded: 4, settled: 3, dropped: 0 })
})

t.test('a new process settles what an earlier one left in the table', async (t) => {
  const first = settler(Object.assign(new StoreStandIn(), { state: 'down' as const })).settler
  const left = message('left behind')
  first.record('tenant-a', left)
  await first.settle()
  await first.stop()
  t.equal(await rowCount(), 1)

  const store = new StoreStandIn()
  const { settler: second } = settler(store)
  t.notOk(second.idle, 'a new settler looks at the table first')
  t.same(await second.settle(), { settled: 1, dropped: 0, storeUnavailable: false })
  t.same(store.settled, [{ tenant: 'tenant-a', ids: [left.id] }])
  t.equal(await rowCount(), 0)
})

t.test('many entries are settled in batches, oldest first', async (t) => {
  const store = new StoreStandIn()
  const { settler: s } = settler(store, outbox, 10)
  const ids: string[] = []
  for (let i = 0; i < 35; i++) {
    const m = message(`m${i}`)
    ids.push(m.id)
    s.record('tenant-a', m)
  }
  store.state = 'down'
  await s.settle()
  store.state = 'up'
  const round = await s.settle()
  t.equal(round.settled, 35)
  t.ok(
    store.settled.every((call) => call.ids.length <= 10),
    'at most batchSize per call',
  )
  t.same(store.settled.flatMap((call) => call.ids).sort(), ids.sort(), 'every entry once')
  t.equal(await rowCount(), 0)
})

t.test('entries the store refuses are dropped with a warning, not retried forever', async (t) => {
  const store = Object.assign(new StoreStandIn(), { state: 'refusing' as const })
  const { settler: s, warnings, counts } = settler(store)
  s.record('tenant-a', message('foreign id'))
  t.same(await s.settle(), { settled: 0, dropped: 1, storeUnavailable: false })
  t.equal(await rowCount(), 0)
  t.match(warnings, [/refused to settle them; dropping them/])
  t.equal(counts.dropped, 1)
})

t.test('when the database cannot take them, entries are kept in memory and settled from there', async (t) => {
  let dbDown = true
  const failing: UnconfirmedOutbox = {
    add: async (entries) => {
      if (dbDown) throw new Error('Connection terminated unexpectedly')
      return outbox.add(entries)
    },
    oldest: async (limit) => {
      if (dbDown) throw new Error('Connection terminated unexpectedly')
      return outbox.oldest(limit)
    },
    remove: (entries) => outbox.remove(entries),
  }
  const store = Object.assign(new StoreStandIn(), { state: 'down' as 'up' | 'down' })
  const { settler: s, warnings } = settler(store, failing)
  const m = message('kept in memory')
  s.record('tenant-a', m)
  t.same(await s.settle(), { settled: 0, dropped: 0, storeUnavailable: true })
  t.equal(s.unsavedCount, 1, 'still in memory')
  t.match(warnings, [/cannot save them in the database; keeping them in memory/])

  store.state = 'up'
  const round = await s.settle()
  t.equal(round.settled, 1, 'settled straight from memory')
  t.equal(s.unsavedCount, 0)
  t.same(store.settled, [{ tenant: 'tenant-a', ids: [m.id] }])

  // stop() saves what only memory holds, once the database answers.
  store.state = 'down'
  const n = message('saved at stop')
  s.record('tenant-a', n)
  await s.settle()
  dbDown = false
  await s.stop()
  t.equal(s.unsavedCount, 0)
  t.same(
    (await outbox.oldest(10)).map((e) => e.message.id),
    [n.id],
    'saved in the table for the next process',
  )
})

t.test('started, it settles on its own while there is work', async (t) => {
  const store = new StoreStandIn()
  const { settler: s } = settler(store)
  s.start(20)
  t.teardown(() => s.stop())
  const m = message('on its own')
  s.record('tenant-a', m)
  const deadline = Date.now() + 5_000
  while (store.settled.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.same(store.settled, [{ tenant: 'tenant-a', ids: [m.id] }])
  while (!s.idle && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.ok(s.idle, 'idle again once the table is empty')
})

t.test('a message with a lone surrogate in its text survives the table', async (t) => {
  const store = new StoreStandIn()
  const { settler: s } = settler(Object.assign(store, { state: 'down' as 'up' | 'down' }))
  const m = message('half a pair: \ud83d end')
  s.record('tenant-a', m)
  await s.settle()
  t.equal(await rowCount(), 1, 'saved')
  const [entry] = await outbox.oldest(1)
  t.equal(entry?.message.text, m.text, 'read back as recorded')
})
