import t from 'tap'
import { migrateMessageStore as migrate } from '../src/plugins/app/database.js'
import { buildTestApp, storageKind, uniqueName } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

t.test('migrations are idempotent: a second run applies nothing', async (t) => {
  const app = await buildTestApp(t, { cache: 'none' })
  t.same(await migrate(app.db), [])
  const { rows } = await app.db.query<{ version: string }>('SELECT version FROM schemaversion ORDER BY version')
  t.ok(rows.length >= 1, 'the schema table records the applied versions')
})

t.test('two instances starting at once on one database migrate once', async (t) => {
  if (storageKind !== 'postgres') {
    // PGlite is one process's embedded database: two instances cannot share it.
    t.comment('PGlite: concurrent start-up does not apply; checked migrating twice in one process instead')
    const app = await buildTestApp(t, { cache: 'none' })
    t.same(await migrate(app.db), [])
    return
  }
  const schema = uniqueName('t')
  const [a, b] = await Promise.all([
    buildTestApp(t, { cache: 'none', schema }),
    buildTestApp(t, { cache: 'none', schema }),
  ])
  t.teardown(async () => {
    const { dropSchema } = await import('./helpers/app.js')
    await dropSchema(schema)
  })
  const { rows } = await a.db.query<{ n: string }>('SELECT count(*) AS n FROM schemaversion')
  const { rows: files } = await b.db.query<{ n: string }>('SELECT count(DISTINCT version) AS n FROM schemaversion')
  t.equal(rows[0]?.n, files[0]?.n, 'each migration recorded exactly once')
  const { rows: tables } = await b.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('messages', 'sessions')`,
    [schema],
  )
  t.equal(tables[0]?.n, '2', 'both tables exist')
})
