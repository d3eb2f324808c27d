import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

/**
 * Session export bench (issue 14): a 100,000-message session exported alone, then the same session and a
 * 100-message one in a 1,000,000-message table (the big session + 9,000 sessions of 100), and a by-metadata
 * export of one user's 10 sessions there. Seeded with SQL (generate_series), read over HTTP as NDJSON by a
 * client that only counts bytes and lines. Reports time, MB/s and the process's peak RSS while exporting.
 *
 *   pnpm --filter @session-runtime/message-store run bench:export
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres; `pglite` for embedded PGlite in
 * memory). The bench's schema is dropped at the end.
 */

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const pglite = url === 'pglite'
const schema = `bench_export_${randomBytes(4).toString('hex')}`
const TOKEN = 'bench-internal-token-0123456789'
const TENANT = 'bench-tenant'
const FLOW = '0b0b0b0b-0000-4000-8000-000000000001'

const app = await buildApp(
  loadConfig({
    LOG_LEVEL: 'warn',
    INTERNAL_TOKEN: TOKEN,
    DATA_DIR: 'memory://',
    DATABASE_URL: pglite ? undefined : url,
    DATABASE_SCHEMA: schema,
    CACHE_ENABLED: 'false',
    // seeding 900,000 rows is one statement
    DATABASE_STATEMENT_TIMEOUT_MS: '600000',
  } as NodeJS.ProcessEnv),
)
await app.listen({ host: '127.0.0.1', port: 0 })
const port = (app.server.address() as AddressInfo).port

/**
 * Seeds `sessions` sessions of `perSession` messages (~350 bytes of NDJSON each) named `${prefix}${i}`; with
 * `users`, session i has the metadata `{"user_id": "u-<i % 900>"}` (10 sessions per user for 9,000).
 */
async function seed(prefix: string, sessions: number, perSession: number, users: boolean) {
  await app.db.query(
    `INSERT INTO messages (id, tenant_id, flow_id, session_id, sender, sender_name, text, properties, ts)
     SELECT md5($1 || s || '/' || j)::uuid, $2, $3, $1 || s,
       CASE WHEN j % 2 = 0 THEN 'User' ELSE 'Machine' END, CASE WHEN j % 2 = 0 THEN 'User' ELSE 'AI' END,
       CASE WHEN j % 2 = 0 THEN 'What are your opening hours on Sunday? (' || j || ')'
         ELSE 'We are open from 10:00 to 16:00 on Sundays. Holiday hours may differ; check the calendar page.' END,
       CASE WHEN j % 2 = 0 THEN '{}'::jsonb ELSE '{"state":"complete","edited":false}'::jsonb END,
       timestamptz '2026-01-01' + (s * $5::int + j) * interval '1 millisecond'
     FROM generate_series(1, $4::int) AS s, generate_series(1, $5::int) AS j`,
    [prefix, TENANT, FLOW, sessions, perSession],
  )
  await app.db.query(
    `INSERT INTO sessions (tenant_id, flow_id, session_id, message_count, first_ts, last_ts, last_text, version, metadata)
     SELECT tenant_id, flow_id, session_id, count(*), min(ts), max(ts), 'last', nextval('session_version_seq'),
       ${users ? `jsonb_build_object('user_id', 'u-' || (substr(session_id, length($1) + 1)::int % 900))` : `'{}'`}
     FROM messages WHERE tenant_id = $2 AND flow_id = $3 AND session_id LIKE $1 || '%' GROUP BY tenant_id, flow_id, session_id`,
    [prefix, TENANT, FLOW],
  )
}

/** One export over HTTP: bytes, lines, seconds, and the process's peak RSS meanwhile. */
function exportOnce(path: string) {
  return new Promise<{ bytes: number; lines: number; seconds: number; peakRss: number; rssBefore: number }>(
    (resolve, reject) => {
      const rssBefore = process.memoryUsage().rss
      let peakRss = rssBefore
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss)
      }, 20)
      const started = performance.now()
      const req = request(
        `http://127.0.0.1:${port}${path}`,
        { headers: { [INTERNAL_TOKEN_HEADER]: TOKEN, [TENANT_HEADER]: TENANT } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`export ${path}: ${res.statusCode}`))
          let bytes = 0
          let lines = 0
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length
            for (const b of chunk) if (b === 10) lines++
          })
          res.on('end', () => {
            clearInterval(sampler)
            peakRss = Math.max(peakRss, process.memoryUsage().rss)
            resolve({ bytes, lines, seconds: (performance.now() - started) / 1000, peakRss, rssBefore })
          })
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end()
    },
  )
}

const mb = (n: number) => (n / 1e6).toFixed(1)
async function report(name: string, path: string) {
  const r = await exportOnce(path)
  console.log(
    `${name.padEnd(58)} ${String(r.lines).padStart(7)} lines ${mb(r.bytes).padStart(6)} MB ` +
      `${r.seconds.toFixed(2).padStart(6)} s ${(r.bytes / 1e6 / r.seconds).toFixed(1).padStart(6)} MB/s ` +
      `peak RSS ${mb(r.peakRss)} MB (+${mb(r.peakRss - r.rssBefore)} MB)`,
  )
}

const exportPath = (session: string) => `/api/v1/monitor/sessions/${session}/export?flow_id=${FLOW}`
try {
  console.log(
    `export bench: ${app.db.kind}, ${availableParallelism()} cores, node ${process.version}, ${new Date().toISOString()}`,
  )
  let t0 = performance.now()
  await seed('big', 1, 100_000, false)
  await app.db.query('ANALYZE messages')
  await app.db.query('ANALYZE sessions')
  console.log(`seeded 100,000 messages in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  await report('100,000-message session, table of 100,000', exportPath('big1'))
  await report('100,000-message session, table of 100,000 (again)', exportPath('big1'))

  t0 = performance.now()
  await seed('s', 9_000, 100, true)
  await app.db.query('ANALYZE messages')
  await app.db.query('ANALYZE sessions')
  const { rows } = await app.db.query<{ n: string }>('SELECT count(*) AS n FROM messages')
  console.log(
    `seeded to ${Number(rows[0]?.n).toLocaleString('en')} messages in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  )
  await report('100,000-message session, table of 1,000,000', exportPath('big1'))
  await report('100-message session, table of 1,000,000', exportPath('s4500'))
  await report(
    'by metadata (user_id=u-7: 10 sessions of 100), table of 1,000,000',
    '/api/v1/monitor/sessions/export?metadata.user_id=u-7',
  )
} finally {
  await app.db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
  await app.close()
}
