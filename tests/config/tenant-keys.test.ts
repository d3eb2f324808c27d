// Both services' tables are keyed so they can be distributed by tenant (docs/scaling.md, "From one Postgres to a
// sharded one"): after all migrations, read from the catalog, every table has a tenant_id column and every primary
// key, unique index or constraint, exclusion constraint and foreign key (both its columns and the ones it references)
// starts with tenant_id. Run on the Postgres the test command found and on PGlite (the same SQL runs on both).
// A table or key added without tenant_id first fails here.
import { randomBytes } from 'node:crypto'
import { dropTestSchemas, testBackends } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { createPgDatabase, createPgliteDatabase, type Database, quoteIdent } from '../../packages/db/src/index.js'
import { migrateMessageStore } from '../../services/message-store/src/plugins/app/database.js'
import { migrateRunService, SCHEMA_TABLE } from '../../services/run-service/src/plugins/app/database.js'

/**
 * Not tenant data, plain tables on the coordinator: Postgrator's bookkeeping (one per service), the
 * retention sweeper's lease (one row for the whole database: at most one sweep at a time, migration 006), and
 * the run-service instances' leases (one row per process, the run-service's migration 005; a reference table).
 */
const VERSION_TABLES = ['schemaversion', SCHEMA_TABLE, 'retention_sweep_lease', 'run_service_instances']
const TENANT = 'tenant_id'

/** What in `schema` is not keyed tenant first, one line each (none: all is). */
async function tenantKeyProblems(db: Database, schema: string): Promise<string[]> {
  const problems: string[] = []
  const { rows: tables } = await db.query<{ table: string; has_tenant: boolean }>(
    `SELECT c.relname AS table,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped) AS has_tenant
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relname = ANY($3::text[])
     ORDER BY c.relname`,
    [schema, TENANT, VERSION_TABLES],
  )
  for (const table of tables) if (!table.has_tenant) problems.push(`table ${table.table} has no ${TENANT} column`)
  // Constraints: primary keys (p), unique (u), exclusion (x) and foreign keys (f) with their referenced columns.
  const { rows: constraints } = await db.query<{
    name: string
    kind: string
    first: string | null
    ref: string | null
  }>(
    `SELECT co.conname AS name, co.contype::text AS kind,
       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = co.conrelid AND a.attnum = co.conkey[1]) AS first,
       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = co.confrelid AND a.attnum = co.confkey[1]) AS ref
     FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND co.contype IN ('p', 'u', 'x', 'f') AND NOT c.relname = ANY($2::text[])
     ORDER BY co.conname`,
    [schema, VERSION_TABLES],
  )
  for (const c of constraints) {
    if (c.first !== TENANT) problems.push(`constraint ${c.name} (${c.kind}) starts with ${c.first ?? 'an expression'}`)
    if (c.kind === 'f' && c.ref !== TENANT) problems.push(`foreign key ${c.name} references ${c.ref} first`)
  }
  // Unique indexes, with or without a constraint (CREATE UNIQUE INDEX, partial ones included); an expression as
  // the first column (indkey 0) counts as not tenant first.
  const { rows: indexes } = await db.query<{ name: string; first: string | null }>(
    `SELECT ic.relname AS name,
       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]) AS first
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND (i.indisunique OR i.indisexclusion) AND NOT c.relname = ANY($2::text[])
     ORDER BY ic.relname`,
    [schema, VERSION_TABLES],
  )
  for (const index of indexes) {
    if (index.first !== TENANT)
      problems.push(`unique index ${index.name} starts with ${index.first ?? 'an expression'}`)
  }
  return problems
}

/** The keys the check found, so a check that reads nothing cannot pass. */
async function keyCount(db: Database, schema: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND i.indisunique AND NOT c.relname = ANY($2::text[])`,
    [schema, VERSION_TABLES],
  )
  return rows[0]?.n ?? 0
}

const BAD_SCHEMA = `
  CREATE TABLE bad_no_tenant (id uuid PRIMARY KEY);
  CREATE TABLE bad_parent (tenant_id text NOT NULL, id uuid NOT NULL, PRIMARY KEY (id, tenant_id));
  CREATE TABLE bad_child (
    tenant_id text NOT NULL, id uuid NOT NULL, parent uuid NOT NULL, name text,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (name, tenant_id),
    FOREIGN KEY (parent, tenant_id) REFERENCES bad_parent (id, tenant_id)
  );
  CREATE UNIQUE INDEX bad_child_lower_name ON bad_child (lower(name), tenant_id);
  CREATE UNIQUE INDEX bad_child_id ON bad_child (id);
  CREATE TABLE good (tenant_id text NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
  CREATE INDEX good_id ON good (id);`

interface Storage {
  kind: 'postgres' | 'pglite'
  /** A new empty database (schema) of this kind. */
  open(t: Test): Promise<Database>
}

const postgresUrl = testBackends().postgresUrl
const storages: Storage[] = [
  {
    kind: 'pglite',
    async open(t) {
      const db = await createPgliteDatabase(undefined)
      t.teardown(() => db.close())
      return db
    },
  },
]
if (postgresUrl) {
  storages.push({
    kind: 'postgres',
    async open(t) {
      const schema = `tenant_keys_${randomBytes(6).toString('hex')}`
      const db = await createPgDatabase({
        connectionString: postgresUrl,
        schema,
        max: 2,
        statementTimeoutMs: 30_000,
        connectTimeoutMs: 5_000,
        statementPrefix: 'tenantkeys_',
      })
      t.teardown(async () => {
        await db.close()
        await dropTestSchemas(schema)
      })
      return db
    },
  })
} else {
  t.comment('no Postgres reachable: checked on PGlite only')
}

for (const storage of storages) {
  t.test(`${storage.kind}: every table of both services is keyed tenant first`, async (t) => {
    const db = await storage.open(t)
    t.ok((await migrateRunService(db)).length > 0, 'the run-service migrated')
    t.ok((await migrateMessageStore(db)).length > 0, 'the message-store migrated')
    const { rows } = await db.query<{ table: string }>(
      `SELECT c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
      [db.schema],
    )
    const tables = rows.map((r) => r.table)
    for (const table of ['messages', 'sessions', 'flows', 'example_flows_seeded', 'unconfirmed_messages']) {
      t.ok(tables.includes(table), `${table} is checked`)
    }
    t.ok((await keyCount(db, db.schema)) >= 5, 'the keys were read')
    t.same(await tenantKeyProblems(db, db.schema), [], 'no table or key without tenant_id first')
    // The lookups by id alone that keep message and flow ids unique across tenants (insert.ts, flow-repository.ts).
    const { rows: lookups } = await db.query<{ name: string }>(
      `SELECT ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = ic.relnamespace
       WHERE n.nspname = $1 AND NOT i.indisunique AND ic.relname IN ('message_ids_id', 'flows_id') ORDER BY 1`,
      [db.schema],
    )
    t.same(
      lookups.map((r) => r.name),
      ['flows_id', 'message_ids_id'],
      'the id lookups are plain indexes',
    )
  })

  t.test(`${storage.kind}: a table or key without tenant_id first is found`, async (t) => {
    const db = await storage.open(t)
    await db.transaction((tx) => tx.exec(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(db.schema)}; ${BAD_SCHEMA}`))
    t.same((await tenantKeyProblems(db, db.schema)).sort(), [
      'constraint bad_child_name_tenant_id_key (u) starts with name',
      'constraint bad_child_parent_tenant_id_fkey (f) starts with parent',
      'constraint bad_no_tenant_pkey (p) starts with id',
      'constraint bad_parent_pkey (p) starts with id',
      'foreign key bad_child_parent_tenant_id_fkey references id first',
      'table bad_no_tenant has no tenant_id column',
      'unique index bad_child_id starts with id',
      'unique index bad_child_lower_name starts with an expression',
      'unique index bad_child_name_tenant_id_key starts with name',
      'unique index bad_no_tenant_pkey starts with id',
      'unique index bad_parent_pkey starts with id',
    ])
  })
}
