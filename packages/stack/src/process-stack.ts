// The whole stack as real processes, started exactly like scripts/start.mjs starts it
// (`node --conditions=@session-runtime/source --import tsx src/server.ts` in each service folder), on free
// ports of 127.0.0.1: for the tests of tests/ (startProcessStack, bound to a tap test) and for the
// whole-stack bench and soak (startStack). Real Postgres and Redis when given, the stack in its own Postgres
// schemas and Redis key prefix, removed when it stops; otherwise embedded PGlite and the in-process cache.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type Backends, deleteRedisKeys, dropSchemas, testBackends } from './backends.js'
import { childExecArgv, endWithProcess, hasExited, sleep, stopChild, type Teardown, waitExit } from './child.js'
import { freePorts } from './free-ports.js'

/** The repository's root folder. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

export const KEY_A = 'e2e-key-a-0123456789abcdef'
export const KEY_B = 'e2e-key-b-0123456789abcdef'
export const TENANT_A = 'tenant-a'
export const TENANT_B = 'tenant-b'

export type ServiceName = 'message-store' | 'run-service' | 'gateway'
/** In the order they start; the gateway, which calls the two others, last. */
const SERVICES: { name: ServiceName; portVar: string }[] = [
  { name: 'message-store', portVar: 'MESSAGE_STORE_PORT' },
  { name: 'run-service', portVar: 'RUN_SERVICE_PORT' },
  { name: 'gateway', portVar: 'GATEWAY_PORT' },
]

/** Bound of waiting for a signalled service to exit (longer than the services' 10 s close-with-grace delay). */
const SIGNAL_EXIT_TIMEOUT_MS = 20_000
/** How much of each process's output is kept for failure messages. */
const OUTPUT_KEEP_CHARS = 16_000

/**
 * Variables of this process that must not reach the services: their settings are made here on purpose, and
 * tap's own (NODE_OPTIONS loads its process tracker) do not belong in a server.
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

export interface RunningService {
  name: ServiceName
  url: string
  child: ChildProcess
  /** The newest stdout + stderr of the process. */
  output(): string
}

export interface ServiceExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface StackOptions {
  /** Postgres of the message-store and the run-service; none: embedded PGlite. */
  postgresUrl?: string
  /** Redis of the message-store; none: its in-process cache. */
  redisUrl?: string
  /** Leave the schemas when the stack stops (a test's own Postgres, thrown away with its data). */
  keepSchemas?: boolean
  /** First part of the schemas' names and the key prefix (then the pid and a random part); default `stack`. */
  name?: string
  /**
   * Without Postgres, keep embedded PGlite's files in a temporary directory (removed at stop) instead of
   * memory, so that a restarted service finds its data again. No effect with Postgres.
   */
  persistentData?: boolean
  /** LOG_LEVEL of every service; default `warn`. */
  logLevel?: string
  /** A model for the run-service (OPENAI_BASE_URL, e.g. a fake model's URL), with a key and a default model. */
  modelUrl?: string
  /**
   * Environment of every service (`all`) and of one; over the stack's own settings (an `undefined` value
   * removes one: the service's default applies).
   */
  env?: Partial<Record<ServiceName | 'all', Record<string, string | undefined>>>
  /** Profile every service with --cpu-prof into `<cpuProfDir>/<name>`. */
  cpuProfDir?: string
  /** Each line a service writes, besides keeping it for `output()`. */
  onLine?: (name: ServiceName, line: string, stream: 'stdout' | 'stderr') => void
  /** A service exited that was not told to (not by `stop`, `kill` or `restart`). */
  onExit?: (service: RunningService, exit: ServiceExit) => void
  /** Bound of the wait for every service's /ready (milliseconds); default 45 s. */
  readyTimeoutMs?: number
  /** Bound of a stopping service's exit after SIGTERM, before SIGKILL; default 5 s. */
  stopTimeoutMs?: number
}

export interface ProcessStack {
  /** The only URL clients use. */
  gatewayUrl: string
  services: Record<ServiceName, RunningService>
  backends: Backends
  /** INTERNAL_TOKEN of the services (unless `env` set another). */
  internalToken: string
  /** Postgres schemas of this stack (message-store, run-service). */
  schemas: { messageStore: string; runService: string }
  redisKeyPrefix: string
  /** Every process's newest output, for failure messages. */
  output(): string
  /**
   * Sends `signal` (default SIGKILL) to one service and waits (bounded) for it to exit; its exit is no
   * `onExit`. Resolves with how it exited: `code` (null when killed by a signal) and `signal`.
   */
  kill(name: ServiceName, signal?: NodeJS.Signals): Promise<ServiceExit>
  /**
   * Starts one service again (stopping it first if it still runs) on the same port, with the same
   * environment and data, and waits for its `/ready`; `services[name]` is the new process afterwards.
   */
  restart(name: ServiceName): Promise<RunningService>
  /** Stops every service (the gateway first), then drops the schemas, deletes the keys and the data directory. */
  stop(): Promise<void>
}

function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!STRIPPED.some((pattern) => pattern.test(name))) env[name] = value
  }
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value
  return env
}

/** Polls `/ready` until it answers 200; fails early, with the process's output, if the process exits. */
async function waitReady(service: RunningService, deadline: number): Promise<void> {
  let last = 'no answer yet'
  const timeoutMs = Math.max(0, deadline - Date.now())
  while (Date.now() < deadline) {
    if (hasExited(service.child)) {
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

/**
 * Starts message-store, run-service and gateway as child processes (like `pnpm start`) and waits for each
 * `/ready`. Tenants: `tenant-a` (KEY_A) and `tenant-b` (KEY_B), unless `env.gateway.API_KEYS` says otherwise.
 * A start that fails stops what did start.
 */
export async function startStack(opts: StackOptions = {}): Promise<ProcessStack> {
  const found: Backends = { postgresUrl: opts.postgresUrl, redisUrl: opts.redisUrl }
  const id = `${opts.name ?? 'stack'}_${process.pid}_${randomBytes(4).toString('hex')}`
  const schemas = { messageStore: `${id}_ms`, runService: `${id}_rs` }
  const redisKeyPrefix = `${id}:`
  const internalToken = randomBytes(24).toString('hex')
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
    INTERNAL_TOKEN: internalToken,
    DATA_DIR: dataDir ?? 'memory://',
    MESSAGE_STORE_URL: url('message-store'),
    RUN_SERVICE_URL: url('run-service'),
  }
  const model = opts.modelUrl
    ? { OPENAI_BASE_URL: opts.modelUrl, OPENAI_API_KEY: 'sk-fake', OPENAI_DEFAULT_MODEL: 'fake-model' }
    : {}
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
      ...model,
    },
    gateway: { API_KEYS: `${TENANT_A}=${KEY_A},${TENANT_B}=${KEY_B}` },
  }
  const envOf = (name: ServiceName, portVar: string) =>
    childEnv({ ...common, ...perService[name], ...opts.env?.all, ...opts.env?.[name], [portVar]: String(ports[name]) })

  const services = {} as Record<ServiceName, RunningService>
  let stopping = false
  /** Processes stopped on purpose (kill, restart): their exit is no `onExit`. */
  const expectedExits = new WeakSet<ChildProcess>()

  function spawnService(name: ServiceName, portVar: string): RunningService {
    const execArgv = childExecArgv(opts.cpuProfDir ? join(opts.cpuProfDir, name) : undefined)
    const child = spawn(process.execPath, [...execArgv, 'src/server.ts'], {
      cwd: join(repoRoot, 'services', name),
      env: envOf(name, portVar),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    endWithProcess(child)
    let output = ''
    for (const [from, stream] of [
      [child.stdout, 'stdout'],
      [child.stderr, 'stderr'],
    ] as const) {
      if (!from) continue
      createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
        output = `${output}${line}\n`.slice(-OUTPUT_KEEP_CHARS)
        opts.onLine?.(name, line, stream)
      })
    }
    child.on('error', (error) => {
      output += `\n[spawn error] ${error.message}\n`
    })
    const service: RunningService = { name, url: url(name), child, output: () => output }
    child.once('exit', (code, signal) => {
      if (!stopping && !expectedExits.has(child)) opts.onExit?.(service, { code, signal })
    })
    return service
  }

  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000
  async function stop(): Promise<void> {
    stopping = true
    // The gateway first, then what it calls: no request of it meets a closing downstream.
    if (services.gateway) await stopChild(services.gateway.child, { timeoutMs: stopTimeoutMs })
    await Promise.all(Object.values(services).map((service) => stopChild(service.child, { timeoutMs: stopTimeoutMs })))
    if (found.postgresUrl && !opts.keepSchemas) {
      await dropSchemas(found.postgresUrl, [schemas.messageStore, schemas.runService])
    }
    if (found.redisUrl) await deleteRedisKeys(found.redisUrl, redisKeyPrefix)
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  }

  for (const { name, portVar } of SERVICES) services[name] = spawnService(name, portVar)
  const output = () =>
    SERVICES.map(({ name }) => `--- ${name} ---\n${services[name].output() || '(no output)'}`).join('\n')

  const readyTimeoutMs = opts.readyTimeoutMs ?? 45_000
  const deadline = Date.now() + readyTimeoutMs
  // The gateway is ready only once both downstreams are; waiting on all three names the one that fails.
  try {
    await Promise.all(SERVICES.map(({ name }) => waitReady(services[name], deadline)))
  } catch (error) {
    await stop().catch(() => {})
    throw error
  }

  async function kill(name: ServiceName, signal: NodeJS.Signals = 'SIGKILL'): Promise<ServiceExit> {
    const { child } = services[name]
    expectedExits.add(child)
    if (!hasExited(child)) child.kill(signal)
    if (!(await waitExit(child, SIGNAL_EXIT_TIMEOUT_MS))) {
      await stopChild(child, { signal: 'SIGKILL' })
      throw new Error(
        `${name} did not exit within ${SIGNAL_EXIT_TIMEOUT_MS} ms of ${signal}:\n${services[name].output()}`,
      )
    }
    return { code: child.exitCode, signal: child.signalCode }
  }

  async function restart(name: ServiceName): Promise<RunningService> {
    const old = services[name]
    expectedExits.add(old.child)
    await stopChild(old.child, { timeoutMs: stopTimeoutMs })
    const portVar = SERVICES.find((service) => service.name === name)?.portVar as string
    const service = spawnService(name, portVar)
    services[name] = service
    await waitReady(service, Date.now() + readyTimeoutMs)
    return service
  }

  return {
    gatewayUrl: url('gateway'),
    services,
    backends: found,
    internalToken,
    schemas,
    redisKeyPrefix,
    output,
    kill,
    restart,
    stop,
  }
}

/** What a test of tests/ needs of tap's test. */
export interface StackTest extends Teardown {
  fail(message: string): void
  passing(): boolean
  comment(message: string): void
}

/**
 * `startStack` for a test: on the Postgres and Redis the test command found (TEST_DATABASE_URL /
 * TEST_REDIS_URL, see scripts/test.mjs), unless `postgresUrl` names a test's own server. Stopped at `t`'s
 * teardown (which prints the services' output if the test failed); a service that exits during the test
 * (not by `kill` or `restart`) fails it.
 */
export async function startProcessStack(
  t: StackTest,
  opts: Omit<StackOptions, 'redisUrl' | 'keepSchemas' | 'onExit'> = {},
): Promise<ProcessStack> {
  const found = testBackends()
  const stack = await startStack({
    name: 'e2e',
    ...opts,
    postgresUrl: opts.postgresUrl ?? found.postgresUrl,
    redisUrl: found.redisUrl,
    // a test's own Postgres is thrown away with its data directory
    keepSchemas: opts.postgresUrl !== undefined,
    onExit: (service, exit) =>
      t.fail(`${service.name} exited during the test (${exit.signal ?? exit.code}):\n${service.output()}`),
  })
  t.teardown(async () => {
    if (!t.passing()) t.comment(`output of the services:\n${stack.output()}`)
    await stack.stop()
  })
  return stack
}
