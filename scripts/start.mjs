#!/usr/bin/env node
// `pnpm start`: runs every service of the stack on this machine. Without
// DATABASE_URL / REDIS_URL they use embedded PGlite (files under DATA_DIR) and an
// in-process cache, so nothing else needs to be installed.
//
// It says "ready" only when every service answers GET /ready with 200 (PGlite and its
// migrations take seconds, more on a busy machine): one line per service as it becomes
// ready, then one line with the gateway's URL, the API key and the Playground. A service
// that exits, or is not ready within START_TIMEOUT_MS (default 120 s), is named with its
// exit and the last lines it wrote; the others are stopped and the launcher exits 1.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dataDir = resolve(root, process.env.DATA_DIR ?? '.data')
mkdirSync(dataDir, { recursive: true })

const startTimeoutMs = Number(process.env.START_TIMEOUT_MS ?? 120_000)
if (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
  console.error(`START_TIMEOUT_MS must be a positive number of milliseconds, not ${process.env.START_TIMEOUT_MS}`)
  process.exit(1)
}
/** How often each /ready is asked, how long one answer may take, how often "still waiting" is said. */
const POLL_MS = 250
const READY_REQUEST_TIMEOUT_MS = 2000
const PROGRESS_EVERY_MS = 10_000
/** Lines of each service's output kept for the report of a failed start, and how many of them it shows. */
const KEPT_LINES = 200
const SHOWN_LINES = 15

// The services trust each other through INTERNAL_TOKEN; made once and kept in DATA_DIR.
let internalToken = process.env.INTERNAL_TOKEN
if (!internalToken) {
  const file = join(dataDir, 'internal-token')
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 })
  internalToken = readFileSync(file, 'utf8').trim()
}

const host = process.env.HOST ?? '127.0.0.1'
/** Where this machine reaches a service listening on HOST (all interfaces: through loopback). */
const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
const services = [
  { name: 'message-store', portVar: 'MESSAGE_STORE_PORT', port: 7862 },
  { name: 'run-service', portVar: 'RUN_SERVICE_PORT', port: 7861 },
  { name: 'gateway', portVar: 'GATEWAY_PORT', port: 7860 },
].map((service) => {
  const port = process.env[service.portVar] ?? String(service.port)
  return { ...service, port, url: `http://${reachable}:${port}` }
})
const [messageStore, runService, gateway] = services
// The run-service reaches the message-store's internal API here; the gateway forwards to both.
const messageStoreUrl = process.env.MESSAGE_STORE_URL ?? messageStore.url
const runServiceUrl = process.env.RUN_SERVICE_URL ?? runService.url

// Known before the gateway starts: whether it will create a key now (and print it once).
const keysFile = join(dataDir, 'gateway-keys.json')
const keyExisted = existsSync(keysFile)
let createdKey

console.log(
  `storage: ${process.env.DATABASE_URL ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${dataDir}`}; ` +
    `cache: ${process.env.REDIS_URL ? 'Redis (REDIS_URL)' : 'in-process'}`,
)

/** Calls `onLine` with each line of `stream`; keeps the last KEPT_LINES in `tail`. */
function follow(stream, tail, onLine) {
  createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
    tail.push(line)
    if (tail.length > KEPT_LINES) tail.shift()
    onLine(line)
  })
}

const startedAt = Date.now()
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`

for (const service of services) {
  const child = spawn(process.execPath, ['--conditions=@session-runtime/source', '--import', 'tsx', 'src/server.ts'], {
    cwd: join(root, 'services', service.name),
    env: {
      ...process.env,
      HOST: host,
      [service.portVar]: service.port,
      DATA_DIR: dataDir,
      INTERNAL_TOKEN: internalToken,
      MESSAGE_STORE_URL: messageStoreUrl,
      RUN_SERVICE_URL: runServiceUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  service.child = child
  service.stdout = []
  service.stderr = []
  // Their output goes through as it was; the gateway's "created API key" line is also remembered.
  follow(child.stdout, service.stdout, (line) => {
    process.stdout.write(`${line}\n`)
    if (service === gateway) createdKey ??= /created API key for tenant "default".*: (\S+)$/.exec(line)?.[1]
  })
  follow(child.stderr, service.stderr, (line) => process.stderr.write(`${line}\n`))
  // 'close': exited and its output read to the end (the report shows its last lines)
  service.closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  console.log(`starting ${service.name} on ${service.url} (pid ${child.pid})`)
}

let stopping = false
/** Stops every service still running, waits until they have exited, then exits with `code`. */
async function stop(code) {
  if (stopping) return
  stopping = true
  const running = services.filter((s) => s.child.exitCode === null && s.child.signalCode === null)
  for (const service of running) service.child.kill('SIGTERM')
  // each service closes within its grace delay (10 s); one that does not is killed
  const kill = setTimeout(() => {
    for (const service of running) service.child.kill('SIGKILL')
  }, 15_000)
  await Promise.all(running.map((service) => service.closed))
  clearTimeout(kill)
  process.exit(code)
}
process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))

class StartFailure extends Error {
  constructor(service, reason) {
    super(`${service.name} failed to start: ${reason}`)
    this.service = service
  }
}

const exitText = ({ code, signal }) => (signal ? `killed by ${signal}` : `exited with code ${code}`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when the service answers GET /ready with 200; rejects when it exits or the time is up. */
async function untilReady(service, deadline) {
  let exit
  service.closed.then((e) => {
    exit = e
  })
  let last = 'no answer yet'
  for (;;) {
    if (stopping) return
    if (exit) throw new StartFailure(service, exitText(exit))
    if (Date.now() >= deadline) {
      throw new StartFailure(
        service,
        `not ready after ${seconds(startTimeoutMs)} (START_TIMEOUT_MS); last /ready: ${last}`,
      )
    }
    try {
      const res = await fetch(`${service.url}/ready`, { signal: AbortSignal.timeout(READY_REQUEST_TIMEOUT_MS) })
      if (res.status === 200) {
        await res.body?.cancel()
        return
      }
      last = `${res.status} ${(await res.text()).slice(0, 200)}`
    } catch (err) {
      last = err?.cause?.code ?? err?.message ?? String(err)
    }
    // an exit ends the wait at once, with the service's output read to the end
    await Promise.race([sleep(POLL_MS), service.closed])
  }
}

function keyHint() {
  if (process.env.API_KEYS) return 'API key: one of API_KEYS'
  if (createdKey) return `API key: ${createdKey} (created now for tenant "default"; only its hash is kept)`
  if (keyExisted) return `API key: the one printed when ${keysFile} was created (only its hash is kept)`
  return 'API key: the one the gateway printed above'
}

const waiting = new Set(services)
console.log(
  `waiting for ${services.map((s) => s.name).join(', ')} to answer /ready (up to ${seconds(startTimeoutMs)}, START_TIMEOUT_MS)…`,
)
const progress = setInterval(() => {
  const names = [...waiting].map((s) => s.name).join(', ')
  console.log(`still waiting for ${names} (${seconds(Date.now() - startedAt)})`)
}, PROGRESS_EVERY_MS)

const deadline = startedAt + startTimeoutMs
try {
  await Promise.all(
    services.map(async (service) => {
      await untilReady(service, deadline)
      if (stopping) return
      waiting.delete(service)
      console.log(`${service.name} is ready (${seconds(Date.now() - startedAt)})`)
    }),
  )
} catch (err) {
  clearInterval(progress)
  if (!(err instanceof StartFailure)) throw err
  const { service } = err
  const output = service.stderr.length > 0 ? service.stderr : service.stdout
  // the error that ended it (Node prints an uncaught one as `Error: message`, then its stack)
  const error = output.findLast((line) => /^[A-Za-z]*Error\b[^:]*: /.test(line))
  console.error(`\n${err.message}${error ? ` (${error})` : ''}`)
  if (output.length > 0) {
    console.error(`last lines of its ${output === service.stderr ? 'stderr' : 'output'}:`)
    for (const line of output.slice(-SHOWN_LINES)) console.error(`  | ${line}`)
  }
  const others = services.filter((s) => s !== service && s.child.exitCode === null && s.child.signalCode === null)
  if (others.length > 0) console.error(`stopping ${others.map((s) => s.name).join(', ')}`)
  await stop(1)
}
clearInterval(progress)

if (!stopping) {
  // After the start, a service that exits stops the stack.
  for (const service of services) {
    service.closed.then((exit) => {
      if (stopping) return
      console.error(`${service.name} ${exitText(exit)}; stopping the stack`)
      stop(exit.code ?? 1)
    })
  }
  console.log(
    `\nready: ${gateway.url} (header or query x-api-key) · ${keyHint()} · Playground: ${gateway.url}/playground/`,
  )
}
