#!/usr/bin/env node
// The test command: finds the real Postgres and Redis if they run, tells which
// backends the storage and cache tests will use, runs tap over every package,
// and ends with one line "N passed, N failed".
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { connect } from 'node:net'

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Sends `probe` (if any) and resolves true when the server answers with something matching `expect`. */
function reachable(url, probe, expect) {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => (probe ? socket.write(probe) : done(true)))
    socket.on('data', (data) => done(expect.test(data.toString('latin1'))))
  })
}

// An SSLRequest packet: any Postgres answers it with one byte, S or N.
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])
const [postgres, redis] = await Promise.all([
  reachable(DATABASE_URL, SSL_REQUEST, /^[SN]/),
  reachable(REDIS_URL, 'PING\r\n', /^\+PONG/),
])

const env = { ...process.env }
if (postgres) env.TEST_DATABASE_URL = DATABASE_URL
else delete env.TEST_DATABASE_URL
if (redis) env.TEST_REDIS_URL = REDIS_URL
else delete env.TEST_REDIS_URL

const where = (url) => new URL(url).host
console.log(
  `storage tests: ${postgres ? `Postgres at ${where(DATABASE_URL)}` : 'embedded PGlite (no Postgres reachable)'}`,
)
console.log(`cache tests:   ${redis ? `Redis at ${where(REDIS_URL)}` : 'in-process LRU (no Redis reachable)'}`)
if (process.env.CI && (!postgres || !redis)) {
  console.log('CI must test against real Postgres and Redis; start them first (.ci/run does).')
  console.log('0 passed, 1 failed')
  process.exit(1)
}

// Tests that need a program of the machine (Debian's Chromium; a redis-server and Postgres server binaries
// they start themselves) are left out here when it is missing, saying so; never in CI.
const tapArgs = process.argv.slice(2)
const hasProgram = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0
const hasPostgresServer = () =>
  existsSync('/usr/lib/postgresql') &&
  readdirSync('/usr/lib/postgresql').some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`))
const needs = [
  {
    what: 'browser tests',
    glob: 'tests/browser/**',
    present: () => existsSync('/usr/bin/chromium'),
    hint: 'no /usr/bin/chromium; apt-get install -y chromium',
  },
  {
    what: 'Redis fault test',
    glob: 'tests/faults/redis-outage-load.test.ts',
    present: () => hasProgram('redis-server'),
    hint: 'no redis-server',
  },
  {
    what: 'Redis Cluster tests',
    glob: '{packages/stack,services/message-store}/test/redis-cluster.test.ts',
    present: () => hasProgram('redis-server') && hasProgram('redis-cli'),
    hint: 'no redis-server or redis-cli; apt-get install -y redis-server',
  },
  {
    what: 'scale-out test',
    glob: 'tests/scale/**',
    present: () => postgres && hasProgram('redis-server') && hasProgram('redis-cli'),
    hint: 'needs a reachable Postgres, redis-server and redis-cli; apt-get install -y redis-server',
  },
  {
    what: 'Postgres restart tests',
    glob: 'tests/faults/postgres-restart*.test.ts',
    present: hasPostgresServer,
    hint: 'no /usr/lib/postgresql/<major>/bin/initdb',
  },
]
const leftOut = process.env.CI ? [] : needs.filter((need) => !need.present())
for (const need of leftOut) console.log(`${need.what}: left out (${need.hint})`)
if (leftOut.length > 0) {
  // --exclude replaces tap's default exclude, so that one is given again
  tapArgs.unshift('--exclude=**/@(fixture*(s)|dist)/**', ...leftOut.map((need) => `--exclude=${need.glob}`))
}

const tap = spawn('pnpm', ['exec', 'tap', ...tapArgs], { env, stdio: ['inherit', 'pipe', 'inherit'] })
let tail = ''
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4000)
})
tap.on('close', (code) => {
  // tap's closing summary: "# { total: 12, pass: 11, fail: 1, skip: 0 }"
  const summary = [...tail.matchAll(/# \{ total: (\d+)([^}]*)\}/g)].at(-1)
  const count = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(summary?.[2] ?? '')?.[1] ?? 0)
  // a file that fails without a failed assertion (a thrown error, a broken plan) is not in tap's count: one more
  const failed = summary ? Math.max(count('fail'), code === 0 ? 0 : 1) : 1
  const passed = count('pass')
  const skipped = count('skip') + count('todo')
  console.log(`backends: storage=${postgres ? 'postgres' : 'pglite'} cache=${redis ? 'redis' : 'in-process'}`)
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
  process.exit(code === 0 && failed === 0 ? 0 : code || 1)
})
