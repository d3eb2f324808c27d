import { buildApp as buildMessageStore } from '@session-runtime/message-store/app'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import t from 'tap'
import { migrateRunService, SCHEMA_TABLE } from '../src/plugins/app/database.js'
import { backends, buildTestApp, INTERNAL_TOKEN, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

t.test('migrations are idempotent: a second run applies nothing', async (t) => {
  const app = await buildTestApp(t)
  t.same(await migrateRunService(app.db), [])
  const { rows } = await app.db.query<{ version: string }>(`SELECT version FROM ${SCHEMA_TABLE} ORDER BY version`)
  t.ok(rows.length >= 1, 'the version table records the applied versions')
})

t.test('the run-service and the message-store can share one database schema', async (t) => {
  if (!backends.postgresUrl) {
    t.comment('PGlite: each service has its own embedded database; nothing is shared')
    return
  }
  // The run-service migrates first, then the message-store: each has its own version table,
  // so neither takes the other's version 1 for its own.
  const app = await buildTestApp(t, { env: { LOG_LEVEL: 'silent' } })
  const store = await buildMessageStore(
    loadMessageStoreConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN,
      DATABASE_URL: backends.postgresUrl,
      DATABASE_SCHEMA: app.schema,
      DATABASE_POOL_MAX: '2',
    } as NodeJS.ProcessEnv),
  )
  t.teardown(() => store.close())
  await store.ready()
  t.same(await migrateRunService(app.db), [], 'the run-service has nothing left to apply')
  const { rows } = await app.db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
    [app.schema],
  )
  const tables = rows.map((r) => r.table_name)
  for (const table of ['flows', 'messages', 'sessions', 'schemaversion', SCHEMA_TABLE]) {
    t.ok(tables.includes(table), `${table} exists`)
  }
})
