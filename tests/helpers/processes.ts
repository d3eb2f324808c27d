// The whole stack as real processes, started exactly like scripts/start.mjs starts it
// (`node --conditions=@session-runtime/source --import tsx src/server.ts` in each service folder),
// on free ports of 127.0.0.1. Real Postgres and Redis when the test command found them
// (TEST_DATABASE_URL / TEST_REDIS_URL, see scripts/test.mjs), each run in its own Postgres schemas and
// Redis key prefix, removed at teardown; otherwise embedded in-memory PGlite and the in-process cache.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

export const KEY_A = 'e2e-key-a-0123456789abcdef'
export const KEY_B = 'e2e-key-b-0123456789abcdef'
export const TENANT_A = 'tenant-a'
export const TENANT_B = 'tenant-b'

export type ServiceName = 'message-store' | 'run-service' | 'gateway'
const SERVICES: { name: ServiceName; portVar: string }[] = [
  { name: 'message-store', portVar: 'MESSAGE_STORE_PORT' },
  { name: 'run-service', portVar: 'RUN_SERVICE_PORT' },
  { name: 'gateway', portVar: 'GATEWAY_PORT' },
]

/** Bounds of every wait (milliseconds). */
const READY_TIMEOUT_MS = 45_000
const STOP_TIMEOUT_MS = 5_000
const KILL_TIMEOUT_MS = 2_000
/** Bound of waiting for a signalled service to exit (longer than the services' 10 s close-with-grace delay). */
const SIGNAL_EXIT_TIMEOUT_MS = 20_000
/** How much of each process's output is kept for failure messages. */
const OUTPUT_KEEP_CHARS = 16_000

/**
 * Variables of this test process that must not reach the services: their settings are set here on
 * purpose, and tap's own (NODE_OPTIONS loads its process tracker) do not belong in a server.
 */
const STRIPPED = [
  /^TAP/,
  /^_TAPJS/,
  /^NODE_OPTIONS$/,
  /^NODE_PATH$/,
  /^(DATABASE|REDIS|CACHE|OPENAI)_/,
  /^(HOST|LOG_LEVEL|INTERNAL_TOKEN|API_KEYS|DATA_DIR|READY_TIMEOUT_MS)$/,
  /_(PORT|URL)$/,
]

export interface Backends {
  postgresUrl: string | undefined
  redisUrl: string | undefined
}

export const backends = (): Backends => ({
  postgresUrl: process.env.TEST_DATABASE_URL || undefined,
  redisUrl: process.env.TEST_REDIS_URL || undefined,
})

export interface RunningService {
  name: ServiceName
  url: string
  child: ChildProcess
  /** The newest stdout + stderr of the process. */
  output(): string
}

export interface ProcessStack {
  /** The only URL the tests use. */
  gatewayUrl: string
  services: Record<ServiceName, RunningService>
  backends: Backends
  /** Postgres schemas of this stack (message-store, run-service); dropped at teardown. */
  schemas: { messageStore: string; runService: string }
  redisKeyPrefix: string
  /** Every process's newest output, for failure messages. */
  output(): string
  /**
   * Sends `signal` (default SIGKILL) to one service and waits (bounded) for it to exit; its exit is then
   * no test failure. Resolves with how it exited: `code` (null when killed by a signal) and `signal`.
   */
  kill(name: ServiceName, signal?: NodeJS.Signals): Promise<ServiceExit>
  /**
   * Starts one service again (stopping it first if it still runs) on the same port, with the same
   * environment and data, and waits for its `/ready`; `services[name]` is the new process afterwards.
   */
  restart(name: ServiceName): Promise<RunningService>
}

export interface ServiceExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ProcessStackOptions {
  /** Extra environment of one service (e.g. the run-service's OPENAI_BASE_URL). */
  env?: Partial<Record<ServiceName, Record<string, string>>>
  /** LOG_LEVEL of every service; default `warn` (the output is kept for failure messages). */
  logLevel?: string
  /**
   * Without Postgres, keep embedded PGlite's files in a temporary directory (removed at teardown) instead
   * of memory, so that a restarted service finds its data again. No effect with Postgres.
   */
  persistentData?: boolean
  /** Postgres for the message-store and the run-service instead of TEST_DATABASE_URL (e.g. a test's own server). */
  postgresUrl?: string
}

/** `count` distinct free ports: bound together on port 0 (so they differ), then released. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve)
      })
    }
    return servers.map((server) => (server.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }
}

function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!STRIPPED.some((pattern) => pattern.test(name))) env[name] = value
  }
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value
  return env
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Resolves true once the child has exited, false after `ms`. */
function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit)
      resolve(false)
    }, ms)
    const onExit = () => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', onExit)
  })
}

/** SIGTERM, then SIGKILL if it has not exited within the bound. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (exited(child)) return
  child.kill('SIGTERM')
  if (await waitExit(child, STOP_TIMEOUT_MS)) return
  child.kill('SIGKILL')
  await waitExit(child, KILL_TIMEOUT_MS)
}

function spawnService(name: ServiceName, port: number, env: NodeJS.ProcessEnv): RunningService {
  const child = spawn(process.execPath, ['--conditions=@session-runtime/source', '--import', 'tsx', 'src/server.ts'], {
    cwd: join(root, 'services', name),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('error', (error) => keep(Buffer.from(`\n[spawn error] ${error.message}\n`)))
  return { name, url: `http://127.0.0.1:${port}`, child, output: () => output }
}

/** Polls `/ready` until it answers 200; fails early, with the process's output, if the process exits. */
async function waitReady(service: RunningService, deadline: number): Promise<void> {
  let last = 'no answer yet'
  const timeoutMs = Math.max(0, deadline - Date.now())
  while (Date.now() < deadline) {
    if (exited(service.child)) {
      throw new Error(
        `${service.name} exited (${service.child.signalCode ?? service.child.exitCode}) before it was ready:\n${service.output()}`,
      )
    }
    try {
      const res = await fetch(`${service.url}/ready`, { signal: AbortSignal.timeout(2_000) })
      const body = await res.text()
      if (res.status === 200) return
      last = `${res.status} ${body}`
    } catch (error) {
      last = (error as Error).message
    }
    await sleep(150)
  }
  throw new Error(`${service.name} was not ready within ${timeoutMs} ms (last: ${last}):\n${service.output()}`)
}

/** Loads a package installed for a workspace service (the root has no runtime dependencies of its own). */
const requireFrom = (service: ServiceName) => createRequire(join(root, 'services', service, 'package.json'))

interface PgClient {
  connect(): Promise<void>
  query(sql: string): Promise<unknown>
  end(): Promise<void>
}
interface RedisClient {
  connect(): Promise<void>
  scan(cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: number): Promise<[string, string[]]>
  del(...keys: string[]): Promise<number>
  quit(): Promise<unknown>
  disconnect(): void
}

async function dropSchemas(url: string, schemas: string[]): Promise<void> {
  const pg = requireFrom('message-store')('pg') as { Client: new (opts: { connectionString: string }) => PgClient }
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const Redis = requireFrom('message-store')('ioredis') as {
    default: new (url: string, opts: object) => RedisClient
  }
  const redis = new Redis.default(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 })
  await redis.connect()
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.quit()
  } finally {
    redis.disconnect()
  }
}

/**
 * Starts message-store, run-service and gateway as child processes (like `pnpm start`), waits for each
 * `/ready`, and stops them at `t`'s teardown (SIGTERM, then SIGKILL), dropping this stack's Postgres
 * schemas and Redis keys. Tenants: `tenant-a` (KEY_A) and `tenant-b` (KEY_B).
 */
export async function startProcessStack(t: Test, opts: ProcessStackOptions = {}): Promise<ProcessStack> {
  const found = { ...backends(), ...(opts.postgresUrl ? { postgresUrl: opts.postgresUrl } : {}) }
  const id = `e2e_${process.pid}_${randomBytes(4).toString('hex')}`
  const schemas = { messageStore: `${id}_ms`, runService: `${id}_rs` }
  const redisKeyPrefix = `${id}:`
  const [storePort = 0, runPort = 0, gatewayPort = 0] = await freePorts(3)
  const ports: Record<ServiceName, number> = {
    'message-store': storePort,
    'run-service': runPort,
    gateway: gatewayPort,
  }
  const url = (name: ServiceName) => `http://127.0.0.1:${ports[name]}`
  const dataDir =
    opts.persistentData && !found.postgresUrl ? mkdtempSync(join(tmpdir(), 'session-runtime-stack-')) : undefined
  const common = {
    HOST: '127.0.0.1',
    LOG_LEVEL: opts.logLevel ?? 'warn',
    INTERNAL_TOKEN: randomBytes(24).toString('hex'),
    DATA_DIR: dataDir ?? 'memory://',
    MESSAGE_STORE_URL: url('message-store'),
    RUN_SERVICE_URL: url('run-service'),
  }
  const perService: Record<ServiceName, Record<string, string | undefined>> = {
    'message-store': {
      DATABASE_URL: found.postgresUrl,
      DATABASE_SCHEMA: schemas.messageStore,
      DATABASE_POOL_MAX: '4',
      REDIS_URL: found.redisUrl,
      REDIS_KEY_PREFIX: redisKeyPrefix,
    },
    'run-service': {
      DATABASE_URL: found.postgresUrl,
      DATABASE_SCHEMA: schemas.runService,
      DATABASE_POOL_MAX: '4',
    },
    gateway: { API_KEYS: `${TENANT_A}=${KEY_A},${TENANT_B}=${KEY_B}` },
  }

  const services = {} as Record<ServiceName, RunningService>
  let stopping = false
  /** Processes stopped on purpose (kill, restart): their exit is no failure. */
  const expectedExits = new WeakSet<ChildProcess>()
  // Registered before anything can fail, so a failed start still stops what did start.
  t.teardown(async () => {
    stopping = true
    await Promise.all(Object.values(services).map((service) => stopProcess(service.child)))
    // a test's own Postgres is thrown away with its data directory
    if (found.postgresUrl && !opts.postgresUrl) {
      await dropSchemas(found.postgresUrl, [schemas.messageStore, schemas.runService])
    }
    if (found.redisUrl) await deleteRedisKeys(found.redisUrl, redisKeyPrefix)
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  })
  const envOf = (name: ServiceName, portVar: string) =>
    childEnv({ ...common, ...perService[name], ...opts.env?.[name], [portVar]: String(ports[name]) })
  for (const { name, portVar } of SERVICES) services[name] = spawnService(name, ports[name], envOf(name, portVar))
  const output = () =>
    SERVICES.map(({ name }) => `--- ${name} ---\n${services[name].output() || '(no output)'}`).join('\n')

  const deadline = Date.now() + READY_TIMEOUT_MS
  // The gateway is ready only once both downstreams are; waiting on all three names the one that fails.
  try {
    await Promise.all(SERVICES.map(({ name }) => waitReady(services[name], deadline)))
  } catch (error) {
    // A test file whose top-level start fails may never reach its teardown: leave no process behind.
    stopping = true
    await Promise.all(Object.values(services).map((service) => stopProcess(service.child)))
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
    throw error
  }

  // A service that dies later would otherwise show up only as refused connections.
  const watchExit = (service: RunningService) =>
    service.child.once('exit', (code, signal) => {
      if (!stopping && !expectedExits.has(service.child)) {
        t.fail(`${service.name} exited during the test (${signal ?? code}):\n${service.output()}`)
      }
    })
  for (const service of Object.values(services)) watchExit(service)

  async function kill(name: ServiceName, signal: NodeJS.Signals = 'SIGKILL'): Promise<ServiceExit> {
    const { child } = services[name]
    expectedExits.add(child)
    if (!exited(child)) child.kill(signal)
    if (!(await waitExit(child, SIGNAL_EXIT_TIMEOUT_MS))) {
      child.kill('SIGKILL')
      await waitExit(child, KILL_TIMEOUT_MS)
      throw new Error(
        `${name} did not exit within ${SIGNAL_EXIT_TIMEOUT_MS} ms of ${signal}:\n${services[name].output()}`,
      )
    }
    return { code: child.exitCode, signal: child.signalCode }
  }

  async function restart(name: ServiceName): Promise<RunningService> {
    const old = services[name]
    expectedExits.add(old.child)
    await stopProcess(old.child)
    const portVar = SERVICES.find((service) => service.name === name)?.portVar as string
    const service = spawnService(name, ports[name], envOf(name, portVar))
    services[name] = service
    await waitReady(service, Date.now() + READY_TIMEOUT_MS)
    watchExit(service)
    return service
  }

  return { gatewayUrl: url('gateway'), services, backends: found, schemas, redisKeyPrefix, output, kill, restart }
}
