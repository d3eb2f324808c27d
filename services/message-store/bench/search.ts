/**
 * `pnpm bench:search`: full-text search (GET /api/v1/monitor/messages/search) on a 1,000,000-message table.
 *
 * Real Postgres only (the table is too big for a quick PGlite run). Creates its own schema, migrates it,
 * seeds the messages with one INSERT … SELECT over generate_series (English-like text of 8–25 words with a
 * skewed word distribution, every 10th message Japanese/Chinese text without spaces, a rare word in 1 of
 * 10,000 messages; 90 % of the rows belong to the searched tenant, the rest to another), ANALYZEs, then runs
 * each query through the repository's own search (the SQL the route runs) BENCH_RUNS times and prints its
 * p50/p99, the number of hits on the first page, and the plan's scan nodes (EXPLAIN ANALYZE) to show that
 * the GIN indexes are used. Drops the schema at the end.
 *
 * Settings: BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), BENCH_MESSAGES (1000000),
 * BENCH_RUNS (30), BENCH_KEEP=1 (keep the schema), BENCH_SCHEMA (search a kept schema again, no seeding).
 */
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { createPgDatabase, type Database, quoteIdent } from '@session-runtime/db'
import type { SearchQuery } from '@session-runtime/schemas'
import pg from 'pg'
import { searchMessages } from '../src/domain/repository/search.js'
import { migrateMessageStore } from '../src/plugins/app/database.js'

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const N = Number(process.env.BENCH_MESSAGES ?? 1_000_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 30)
/** BENCH_SCHEMA: a schema a run kept (BENCH_KEEP=1): its table is searched again, not seeded. */
const reuse = process.env.BENCH_SCHEMA
const schema = reuse ?? `bench_search_${randomBytes(4).toString('hex')}`
const TENANT = 'bench'
const FLOWS = 20
const flowId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`

const EN = `the a to and of is you it for in that this on with be can your have please order help thanks
  what are my not do we will how if at get just need me when or so an check time about as from know like
  account payment delivery ticket refund shipping invoice password reset login error update status address
  email phone number issue problem question answer customer support agent model prompt token context
  memory session message reply flow run stream chat bot assistant user server database cache query index
  search result page cursor limit filter tenant schedule meeting calendar tomorrow today morning evening
  weather forecast rain sunny cloudy travel flight hotel booking cancel change confirm price discount coupon
  product item cart checkout stock available color size return exchange warranty repair battery screen
  laptop keyboard mouse cable charger adapter network wifi router signal slow fast broken fixed working
  ok yes no maybe sure great good bad fine nice cool wow hello hi hey bye goodbye welcome sorry apologies`
  .split(/\s+/)
  .filter(Boolean)
const CJK = `東京 京都 大阪 猫 犬 天気 会議 予約 注文 配送 確認 問題 返品 支払い 明日 今日 時間 電話 住所 変更
  ありがとう よろしく お願いします です ます した 私 あなた 我们 你好 谢谢 订单 发货 退款 问题 今天 明天 天气 会议`
  .split(/\s+/)
  .filter(Boolean)

const lit = (words: string[]) => `ARRAY[${words.map((w) => `'${w.replaceAll("'", "''")}'`).join(',')}]::text[]`

async function main() {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  const db = await createPgDatabase({
    connectionString: url,
    schema,
    max: 2,
    statementTimeoutMs: 3_600_000,
    connectTimeoutMs: 5000,
    statementPrefix: 'bench_',
  })
  try {
    await admin.query(`SET search_path = ${quoteIdent(schema)}, public`)
    const seeding = reuse ? `reused schema ${schema}` : await seed(db, admin)
    await admin.query('ANALYZE messages')
    const sizes = await admin.query<{ name: string; size: string }>(
      // partitioned (migrations/007): a table's or an index's size is the sum of its partitions'
      `SELECT c.relname AS name,
         pg_size_pretty((SELECT sum(pg_relation_size(p.relid)) FROM pg_partition_tree(c.oid) p)) AS size
       FROM pg_class c
       WHERE c.relnamespace = $1::regnamespace AND c.relname IN ('messages', 'messages_text_trgm', 'messages_text_grams')
       ORDER BY c.relname`,
      [schema],
    )
    const counts = await admin.query<{ tenant_id: string; n: string }>(
      'SELECT tenant_id, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1',
    )
    console.log(`search bench — ${new Date().toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model})`)
    console.log(`Postgres ${(await admin.query('SHOW server_version')).rows[0].server_version}, schema ${schema}`)
    console.log(`${seeding}; rows: ${counts.rows.map((r) => `${r.tenant_id}: ${r.n}`).join(', ')}`)
    console.log(`sizes: ${sizes.rows.map((r) => `${r.name} ${r.size}`).join(', ')}`)

    const queries: Array<[string, Partial<SearchQuery>]> = [
      ['common word', { q: 'order' }],
      ['two common words', { q: 'please order' }],
      ['rare word', { q: 'xylophone' }],
      ['rare + common word', { q: 'xylophone the' }],
      ['no match', { q: 'zebra' }],
      ['phrase', { q: '"check payment"' }],
      ['CJK 2 chars', { q: '東京' }],
      ['CJK 1 char', { q: '猫' }],
      ['CJK 2 words', { q: '東京 返品' }],
      ['short latin word', { q: 'ok' }],
      ['symbols', { q: '&' }],
      ['rare word, flow filter', { q: 'xylophone', flow_id: flowId(7) }],
      ['common word, session filter', { q: 'order', session_id: 'session-1234', flow_id: flowId(14) }],
      ['CJK, session filter', { q: '東京', session_id: 'session-1233' }],
    ]
    console.log('\n| query | q | hits (page of 50) | p50 ms | p99 ms | scans in the plan |')
    console.log('|---|---|---|---|---|---|')
    for (const [name, query] of queries) {
      const q = { limit: 50, ...query } as SearchQuery
      const plan = await explain(db, q)
      const times: number[] = []
      let hits = 0
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now()
        const page = await searchMessages(db, TENANT, q)
        times.push(performance.now() - start)
        hits = (JSON.parse(page.body) as unknown[]).length
      }
      times.sort((a, b) => a - b)
      const pct = (p: number) =>
        (times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)] ?? 0).toFixed(1)
      const filters = Object.entries(query)
        .filter(([k]) => k !== 'q')
        .map(([k]) => k)
      console.log(
        `| ${name} | \`${query.q}\`${filters.length ? ` + ${filters.join(', ')}` : ''} | ${hits} | ${pct(50)} | ${pct(99)} | ${plan} |`,
      )
    }
  } finally {
    await db.close()
    if (process.env.BENCH_KEEP !== '1') await admin.query(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`)
    await admin.end()
  }
}

/** Migrates the new schema and fills it: N messages, then the search indexes; says how long each took. */
async function seed(db: Database, admin: pg.Client): Promise<string> {
  await migrateMessageStore(db)
  await admin.query(`SET maintenance_work_mem = '256MB'`)
  // The search indexes are built after the seeding, as the migration defines them (a bulk build is faster
  // than a million GIN insertions); the insertion cost of a single message is in the write benchmarks.
  const { rows: searchIndexes } = await admin.query<{ name: string; def: string }>(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes
     WHERE schemaname = $1 AND indexname IN ('messages_text_trgm', 'messages_text_grams')`,
    [schema],
  )
  // and their statistics targets (ALTER INDEX … SET STATISTICS), which a new index would not have
  const { rows: targets } = await admin.query<{ name: string; attnum: number; target: number }>(
    // set on each partition's index (migrations/007), read from any of them
    `SELECT i.name, a.attnum, max(a.attstattarget) AS target
     FROM (SELECT c.relname AS name, c.oid FROM pg_class c
           WHERE c.relnamespace = $1::regnamespace AND c.relname IN ('messages_text_trgm', 'messages_text_grams')) i
     CROSS JOIN LATERAL pg_partition_tree(i.oid) p
     JOIN pg_attribute a ON a.attrelid = p.relid
     WHERE p.isleaf AND a.attstattarget > 0
     GROUP BY i.name, a.attnum`,
    [schema],
  )
  for (const { name } of searchIndexes) await admin.query(`DROP INDEX ${quoteIdent(name)}`)
  const t0 = performance.now()
  // One statement; a word's place in its list is skewed towards the start (r^2), so some words are in most
  // messages and others in few (`k * 0`, `i * 0`: the subqueries are evaluated per row and per word).
  await admin.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, ts, sender, sender_name, text)
     SELECT gen_random_uuid(), CASE WHEN i % 10 = 5 THEN 'other' ELSE '${TENANT}' END,
       ('00000000-0000-4000-8000-' || lpad((i % ${FLOWS})::text, 12, '0'))::uuid,
       'session-' || (i % 20000), now() - make_interval(secs => ${N} - i),
       CASE WHEN i % 2 = 0 THEN 'User' ELSE 'Machine' END, CASE WHEN i % 2 = 0 THEN 'User' ELSE 'AI' END,
       CASE WHEN i % 10 = 3
         THEN (SELECT string_agg(c[1 + floor(random() ^ 2 * cardinality(c))::int + k * 0], '')
               FROM generate_series(1, 4 + i % 9 + i * 0) k)
         ELSE (SELECT string_agg(e[1 + floor(random() ^ 2 * cardinality(e))::int + k * 0], ' ')
               FROM generate_series(1, 8 + i % 18 + i * 0) k)
       END || CASE WHEN i % 10000 = 7 THEN ' xylophone' ELSE '' END
     FROM generate_series(1, ${N}) i, (SELECT ${lit(EN)} AS e, ${lit(CJK)} AS c) w`,
  )
  const seeded = performance.now() - t0
  const built: string[] = []
  for (const { name, def } of searchIndexes) {
    const start = performance.now()
    // pg_indexes defines a partitioned table's index `ON ONLY` the parent: built that way it would cover no
    // partition; built on the table it is built on every partition (as the migration does)
    await admin.query(def.replace(' ON ONLY ', ' ON '))
    built.push(`${name} ${((performance.now() - start) / 1000).toFixed(1)} s`)
  }
  // the statistics targets, on each partition's index (the planner reads those), as the migration sets them
  for (const { name, attnum, target } of targets) {
    const { rows: parts } = await admin.query<{ part: string }>(
      `SELECT relid::regclass::text AS part FROM pg_partition_tree($1::regclass) WHERE isleaf`,
      [name],
    )
    for (const { part } of parts) {
      await admin.query(`ALTER INDEX ${part} ALTER COLUMN ${Number(attnum)} SET STATISTICS ${Number(target)}`)
    }
  }
  return `seeded ${N} messages in ${(seeded / 1000).toFixed(1)} s; index builds: ${built.join(', ')}`
}

/** The scan nodes of the search's plan (EXPLAIN ANALYZE of the statement the search runs). */
async function explain(db: Database, q: SearchQuery): Promise<string> {
  const nodes: string[] = []
  const spy: Database = {
    ...db,
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          ...tx,
          query: async (sql, params) => {
            if (sql.startsWith('SET ')) return tx.query(sql, params)
            const { rows } = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${sql}`, params)
            for (const { 'QUERY PLAN': line } of rows) {
              const m =
                /(Seq Scan|Bitmap Index Scan|Index Scan Backward|Index Scan|Index Only Scan) (?:using|on) (\w+)/.exec(
                  line,
                )
              if (m && !nodes.includes(`${m[1]} ${m[2]}`)) nodes.push(`${m[1]} ${m[2]}`)
            }
            return { rows: [] } as never
          },
        }),
      ),
  }
  await searchMessages(spy, TENANT, q)
  return nodes.join(', ')
}

await main()
