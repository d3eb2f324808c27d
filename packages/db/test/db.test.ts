import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import {
  createPgDatabase,
  createPgliteDatabase,
  type Database,
  databaseErrorMeaning,
  isUnavailableError,
  migrate,
} from '../src/index.js'

/** Real Postgres when the test command found it (scripts/test.mjs sets it), else embedded PGlite. */
const postgresUrl = process.env.TEST_DATABASE_URL || undefined
t.comment(`storage: ${postgresUrl ? 'postgres' : 'pglite'}`)

async function openDatabase(t: Test, schema = `db_${process.pid}_${randomBytes(4).toString('hex')}`) {
  const db: Database = postgresUrl
    ? await createPgDatabase({
        connectionString: postgresUrl,
        schema,
        max: 2,
        statementTimeoutMs: 10_000,
        connectTimeoutMs: 5000,
        statementPrefix: 'dbtest_',
      })
    : await createPgliteDatabase(undefined)
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${db.schema}"`)
  t.teardown(async () => {
    await db.close()
    if (!postgresUrl) return
    const client = new pg.Client({ connectionString: postgresUrl })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => client.end())
  })
  return db
}

async function migrationsDir(t: Test, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'db-migrations-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql)
  return join(dir, '*.sql')
}

t.test('migrate applies the files of the given glob once, in its own version table', async (t) => {
  const db = await openDatabase(t)
  const a = await migrationsDir(t, {
    '001.do.one.sql': 'CREATE TABLE one (id int PRIMARY KEY);',
    '002.do.two.sql': 'CREATE TABLE two (id int PRIMARY KEY);',
  })
  const b = await migrationsDir(t, { '001.do.other.sql': 'CREATE TABLE other (id int PRIMARY KEY);' })

  const names = (files: string[]) => files.map((file) => basename(file))
  t.same(names(await migrate(db, { migrations: a, lockId: 1 })), ['001.do.one.sql', '002.do.two.sql'])
  t.same(await migrate(db, { migrations: a, lockId: 1 }), [], 'a second run applies nothing')
  t.same(
    names(await migrate(db, { migrations: b, lockId: 2, schemaTable: 'other_schemaversion' })),
    ['001.do.other.sql'],
    "a second service's version 1 in the same schema is not taken for the first's",
  )
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM one, two, other')
  t.equal(rows[0]?.n, 0, 'every table exists')
})

t.test('query, and transaction that rolls back when it throws', async (t) => {
  const db = await openDatabase(t)
  await db.query('CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)')
  await db.query('INSERT INTO items VALUES ($1, $2)', [1, 'one'])
  await t.rejects(
    db.transaction(async (tx) => {
      await tx.query('INSERT INTO items VALUES ($1, $2)', [2, 'two'])
      throw new Error('boom')
    }),
    /boom/,
  )
  const inserted = await db.transaction(async (tx) => {
    await tx.exec("INSERT INTO items VALUES (3, 'three'); INSERT INTO items VALUES (4, 'four');")
    return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM items')).rows[0]?.n
  })
  t.equal(inserted, 3)
  const { rows } = await db.query<{ id: number }>('SELECT id FROM items ORDER BY id')
  t.same(
    rows.map((r) => r.id),
    [1, 3, 4],
    'the failed transaction left nothing',
  )
})

t.test('prepared statements are named with the given prefix (Postgres)', async (t) => {
  if (!postgresUrl) {
    t.comment('PGlite: no named statements')
    return
  }
  const db = await openDatabase(t)
  await db.query('SELECT 1')
  const { rows } = await db.query<{ name: string }>('SELECT name FROM pg_prepared_statements')
  t.ok(
    rows.some((r) => r.name.startsWith('dbtest_')),
    'a statement named dbtest_<n>',
  )
})

t.test('isUnavailableError tells connection failures from the caller’s errors', async (t) => {
  t.ok(isUnavailableError({ code: 'ECONNREFUSED' }))
  t.ok(isUnavailableError({ code: '57P01' }))
  t.ok(isUnavailableError(new Error('Connection terminated unexpectedly')))
  t.notOk(isUnavailableError({ code: '23505' }))
  t.notOk(isUnavailableError(undefined))
})

t.test('databaseErrorMeaning: unreachable, unstorable (NUL, lone surrogate), or nothing to say', async (t) => {
  t.same(databaseErrorMeaning({ code: 'ECONNREFUSED' }), { kind: 'unavailable' })
  t.same(databaseErrorMeaning(new Error('PGlite is closed')), { kind: 'unavailable' })
  t.same(databaseErrorMeaning({ code: '22P05', message: 'unsupported Unicode escape sequence' }), {
    kind: 'unstorable',
    detail: 'body contains a character that cannot be stored (NUL, \\u0000)',
  })
  t.match(databaseErrorMeaning({ code: '22021' }), { kind: 'unstorable', detail: /NUL/ })
  t.same(
    databaseErrorMeaning({
      code: '22P02',
      message: 'invalid input syntax for type json',
      detail: 'Unicode low surrogate must follow a high surrogate.',
    }),
    { kind: 'unstorable', detail: 'body contains a character that cannot be stored (a lone UTF-16 surrogate)' },
  )
  t.equal(databaseErrorMeaning({ code: '22P02', message: 'invalid input syntax for type uuid' }), undefined)
  t.equal(databaseErrorMeaning({ code: '23505' }), undefined)
  t.equal(databaseErrorMeaning(new Error('anything else')), undefined)
  t.equal(databaseErrorMeaning(undefined), undefined)
})

t.test('listen: the payloads of NOTIFY on a channel, until stopped', async (t) => {
  const db = await openDatabase(t)
  const channel = `dbtest_${randomBytes(4).toString('hex')}`
  const received: string[] = []
  const stop = await (db.listen as NonNullable<Database['listen']>)(channel, (payload) => received.push(payload))
  await db.query('SELECT pg_notify($1, $2)', [channel, 'first'])
  await db.query('SELECT pg_notify($1, $2)', ['some_other_channel', 'not for us'])
  await db.query('SELECT pg_notify($1, $2)', [channel, '["a", "b"]'])
  for (const deadline = Date.now() + 10_000; received.length < 2 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.same(received, ['first', '["a", "b"]'], 'in order, only its channel')
  await stop()
  await db.query('SELECT pg_notify($1, $2)', [channel, 'after the stop'])
  // a marker on another channel, sent after it: once the marker is in, a late delivery would most likely be too
  const check = `dbtest_${randomBytes(4).toString('hex')}`
  const seen: string[] = []
  const stopCheck = await (db.listen as NonNullable<Database['listen']>)(check, (payload) => seen.push(payload))
  await db.query('SELECT pg_notify($1, $2)', [check, 'marker'])
  for (const deadline = Date.now() + 10_000; seen.length < 1 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await stopCheck()
  t.same(seen, ['marker'])
  t.same(received, ['first', '["a", "b"]'], 'nothing after the stop')
})
