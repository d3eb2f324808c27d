// A write whose statement committed but whose answer was lost (the connection dropped after the
// commit, e.g. Postgres stopped at that moment) is answered 503; the caller retries it with the same
// id and gets 200 (already stored). From then on it is acknowledged, so every history read must show
// it, the cached one included: the retry must not leave the cache at its state from before the write.
import { randomUUID } from 'node:crypto'
import type { Database } from '@session-runtime/db'
import t from 'tap'
import { MessageRepository } from '../src/domain/repository/message-repository.js'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

const TENANT = 'tenant-a'
t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

t.test('a retried write whose first answer was lost is in the cached history', async (t) => {
  const app = await buildTestApp(t)
  const flow_id = randomUUID()
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'm1' })])
  const read = async () => (await history(app, TENANT, { flow_id, session_id: 's' })).map((m) => m.text)
  t.same(await read(), ['m1'])
  t.same(await read(), ['m1'], 'cached')
  const hits = app.repository.stats().hits

  // The insert commits, then the connection "drops" before its answer arrives.
  let lose = true
  const lossy: Database = {
    ...app.db,
    async query(sql, params) {
      const result = await app.db.query(sql, params)
      if (lose && sql.includes('INSERT INTO messages')) {
        lose = false
        throw Object.assign(new Error('Connection terminated unexpectedly'), {})
      }
      return result as never
    },
  }
  const writer = new MessageRepository(lossy, app.historyCache, {
    history: { maxEntries: 200, maxMessageBytes: 16_384 },
    writer: { maxInFlight: 1, maxBatchMessages: 100 },
  })
  const m2 = messageInput({ flow_id, session_id: 's', text: 'm2' })
  await t.rejects(writer.write(TENANT, [m2]), /Connection terminated/, 'the first attempt is not acknowledged')

  const retry = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders(TENANT),
    payload: m2,
  })
  t.equal(retry.statusCode, 200, 'the retry: already stored')
  t.same(await read(), ['m1', 'm2'], 'the acknowledged message is in the history')
  t.same(await read(), ['m1', 'm2'], 'and in the cached history')
  t.ok(app.repository.stats().hits > hits, 'the cache is still used')
})
