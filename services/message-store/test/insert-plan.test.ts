import { randomUUID } from 'node:crypto'
import t from 'tap'
import { INSERT_SQL } from '../src/domain/repository/insert.js'
import { buildTestApp, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

t.test('a write looks up its ids by index, not by scanning messages, on a table never analyzed', async (t) => {
  const app = await buildTestApp(t, { cache: 'none' })
  // A fresh table that autovacuum has not analyzed yet: Postgres plans with no statistics.
  // The ids are looked up in the id ledger (migrations/007), which holds one row per stored message.
  if (storageKind === 'postgres') await app.db.query('ALTER TABLE message_ids SET (autovacuum_enabled = false)')
  await app.db.query(
    `WITH m AS (
       INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text)
       SELECT gen_random_uuid(), 'seed', $1, 's-' || (i % 200), 'User', 'User', 'seed ' || i
       FROM generate_series(1, 3000) AS i
       RETURNING tenant_id, id, ts)
     INSERT INTO message_ids (tenant_id, id, ts) SELECT tenant_id, id, ts FROM m`,
    [randomUUID()],
  )
  const input = JSON.stringify([
    {
      tenant_id: 'tenant-a',
      id: randomUUID(),
      flow_id: randomUUID(),
      session_id: 's',
      sender: 'User',
      sender_name: 'User',
      text: 'hi',
    },
  ])
  const { rows } = await app.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${INSERT_SQL}`, [input])
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n')
  t.notMatch(plan, /Seq Scan on message/, 'no sequential scan of messages or of their ids')
  t.match(plan, /Index (Only )?Scan using message_ids_id on message_ids/, 'the id ownership check uses message_ids_id')
})
