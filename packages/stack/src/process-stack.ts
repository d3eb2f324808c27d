// The whole stack as real processes, started exactly like scripts/start.mjs starts it
// (`node --conditions=@session-runtime/source --import tsx src/server.ts` in each service folder), on free
// ports of 127.0.0.1: for the tests of tests/ (startProcessStack, bound to a tap test) and for the
// whole-stack bench and soak (startStack). Real Postgres and Redis when given, the stack in its own Postgres
// schemas and Redis key prefix, removed when it stops; otherwise embedded PGlite and the in-process cache.
// One process of each service by default, or several (`instances`), each on its own port, the services that
// call another given the URLs of all its processes.
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
  /** Which process of the service (0 unless `instances` asked for more). */
  index: number
  port: number
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
  /**
   * A Redis Cluster of the message-store instead (REDIS_CLUSTER_NODES, `host:port,...`, e.g. `nodesEnv` of
   * startRedisCluster); REDIS_URL is then not given. The cluster is the caller's own: no keys are deleted in it.
   */
  redisClusterNodes?: string
  /**
   * How many processes of a service to start (default 1 each), each on its own port. The gateway's
   * RUN_SERVICE_URL and MESSAGE_STORE_URL and the run-service's MESSAGE_STORE_URL list every process of that
   * service, comma-separated. More than one message-store or run-service needs Postgres (`postgresUrl`):
   * embedded PGlite is one process's own.
   */
  instances?: Partial<Record<ServiceName, number>>
  /**
   * Environment of one process of a service (by index, from 0), over `env`: e.g. one message-store whose
   * REDIS_URL goes through a TCP relay.
   */
  instanceEnv?: Partial<Record<ServiceName, (Record<string, string | undefined> | undefined)[]>>
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
  /** More Node flags for every service, after the stack's own (e.g. `--expose-gc`, a bench's `--import` preload). */
  nodeArgs?: string[]
  /** Each line a service writes, besides keeping it for `output()`; `index`: which process of the service. */
  onLine?: (name: ServiceName, line: string, stream: 'stdout' | 'stderr', index: number) => void
  /** A service exited that was not told to (not by `stop`, `kill` or `restart`). */
  onExit?: (service: RunningService, exit: ServiceExit) => void
  /** Bound of the wait for every service's /ready (milliseconds); default 45 s. */
  readyTimeoutMs?: number
  /** Bound of a stopping service's exit after SIGTERM, before SIGKILL; default 5 s. */
  stopTimeoutMs?: number
}

export interface ProcessStack {
  /** The only URL clients use (the first gateway's). */
  gatewayUrl: string
  /** Every gateway's URL (one unless `instances` asked for more). */
  gatewayUrls: string[]
  /** The first (or only) process of each service. */
  services: Record<ServiceName, RunningService>
  /** Every process of each service, by index. */
  instances: Record<ServiceName, RunningService[]>
  backends: Backends
  /** INTERNAL_TOKEN of the services (unless `env` set another). */
  internalToken: string
  /** Postgres schemas of this stack (message-store, run-service). */
  schemas: { messageStore: string; runService: string }
  redisKeyPrefix: string
  /** Every process's newest output, for failure messages. */
  output(): string
  /**
   * Sends `signal` (default SIGKILL) to one process of a service (`index`, default the first) and waits
   * (bounded) for it to exit; its exit is no `onExit`. Resolves with how it exited: `code` (null when killed
   * by a signal) and `signal`.
   */
  kill(name: ServiceName, signal?: NodeJS.Signals, index?: number): Promise<ServiceExit>
  /**
   * Starts one process of a service (`index`, default the first) again (stopping it first if it still
   * runs) on the same port, with the same environment and data, and waits for its `/ready`;
   * `instances[name][index]` (and `services[name]` for the first) is the new process afterwards.
   */
  restart(name: ServiceName, index?: number): Promise<RunningService>
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

/** `gateway` for the first process, `gateway#1` for the second, ... */
const label = ({ name, index }: { name: ServiceName; index: number }) => (index > 0 ? `${name}#${index}` : name)

/** Polls `/ready` until it answers 200; fails early, with the process's output, if the process exits. */
async function waitReady(service: RunningService, deadline: number): Promise<void> {
  let last = 'no answer yet'
  const timeoutMs = Math.max(0, deadline - Date.now())
  while (Date.now() < deadline) {
    if (hasExited(service.child)) {
      throw new Error(
        `${label(service)} exited (${service.child.signalCode ?? service.child.exitCode}) before it was ready:\n${service.output()}`,
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
  throw new Error(`${label(service)} was not ready within ${timeoutMs} ms (last: ${last}):\n${service.output()}`)
}

const localUrl = (port: number) => `http://127.0.0.1:${port}`

/** What `serviceSettings` needs besides the options: what `startStack` chose. */
export interface StackPlan {
  /** The port of every process of each service, by index. */
  ports: Record<ServiceName, number[]>
  schemas: { messageStore: string; runService: string }
  redisKeyPrefix: string
  internalToken: string
  /** Embedded PGlite's directory; none: in memory. */
  dataDir?: string
}

/**
 * The settings of each process (by service and index): the stack's own, then `env.all`, `env[name]` and
 * `instanceEnv[name][index]` over them, then its port. An `undefined` value is one not given.
 */
export function serviceSettings(
  opts: StackOptions,
  plan: StackPlan,
): (name: ServiceName, index: number) => Record<string, string | undefined> {
  const urls = (name: ServiceName) => plan.ports[name].map(localUrl).join(',')
  const common = {
    HOST: '127.0.0.1',
    LOG_LEVEL: opts.logLevel ?? 'warn',
    INTERNAL_TOKEN: plan.internalToken,
    DATA_DIR: plan.dataDir ?? 'memory://',
    MESSAGE_STORE_URL: urls('message-store'),
    RUN_SERVICE_URL: urls('run-service'),
  }
  const model = opts.modelUrl
    ? { OPENAI_BASE_URL: opts.modelUrl, OPENAI_API_KEY: 'sk-fake', OPENAI_DEFAULT_MODEL: 'fake-model' }
    : {}
  const perService: Record<ServiceName, Record<string, string | undefined>> = {
    'message-store': {
      DATABASE_URL: opts.postgresUrl,
      DATABASE_SCHEMA: plan.schemas.messageStore,
      DATABASE_POOL_MAX: '4',
      ...(opts.redisClusterNodes ? { REDIS_CLUSTER_NODES: opts.redisClusterNodes } : { REDIS_URL: opts.redisUrl }),
      REDIS_KEY_PREFIX: plan.redisKeyPrefix,
    },
    'run-service': {
      DATABASE_URL: opts.postgresUrl,
      DATABASE_SCHEMA: plan.schemas.runService,
      DATABASE_POOL_MAX: '4',
      ...model,
    },
    gateway: { API_KEYS: `${TENANT_A}=${KEY_A},${TENANT_B}=${KEY_B}` },
  }
  const portVar = (name: ServiceName) => SERVICES.find((service) => service.name === name)?.portVar as string
  return (name, index) => ({
    ...common,
    ...perService[name],
    ...opts.env?.all,
    ...opts.env?.[name],
    ...opts.instanceEnv?.[name]?.[index],
    [portVar(name)]: String(plan.ports[name][index]),
  })
}

/** How many processes of each service `opts` asks for, checked. */
function instanceCounts(opts: StackOptions): Record<ServiceName, number> {
  const counts = {} as Record<ServiceName, number>
  for (const { name } of SERVICES) {
    const count = opts.instances?.[name] ?? 1
    if (!Number.isInteger(count) || count < 1) throw new Error(`instances of ${name}: ${count} is not a count ≥ 1`)
    if (count > 1 && name !== 'gateway' && !opts.postgresUrl) {
      throw new Error(`${count} processes of ${name} need Postgres (postgresUrl): embedded PGlite is one process's own`)
    }
    counts[name] = count
  }
  return counts
}

/**
 * Starts message-store, run-service and gateway as child processes (like `pnpm start`; as many of each as
 * `instances` says) and waits for each `/ready`. Tenants: `tenant-a` (KEY_A) and `tenant-b` (KEY_B), unless
 * `env.gateway.API_KEYS` says otherwise. A start that fails stops what did start.
 */
export async function startStack(opts: StackOptions = {}): Promise<ProcessStack> {
  const found: Backends = { postgresUrl: opts.postgresUrl, redisUrl: opts.redisUrl }
  const counts = instanceCounts(opts)
  const id = `${opts.name ?? 'stack'}_${process.pid}_${randomBytes(4).toString('hex')}`
  const schemas = { messageStore: `${id}_ms`, runService: `${id}_rs` }
  const redisKeyPrefix = `${id}:`
  const internalToken = randomBytes(24).toString('hex')
  const allPorts = await freePorts(SERVICES.reduce((sum, { name }) => sum + counts[name], 0))
  const ports = {} as Record<ServiceName, number[]>
  for (const { name } of SERVICES) ports[name] = allPorts.splice(0, counts[name])
  const url = (name: ServiceName, index = 0) => localUrl(ports[name][index] as number)
  const urls = (name: ServiceName) => ports[name].map(localUrl)
  const dataDir =
    opts.persistentData && !found.postgresUrl ? mkdtempSync(join(tmpdir(), 'session-runtime-stack-')) : undefined
  const settings = serviceSettings(opts, { ports, schemas, redisKeyPrefix, internalToken, dataDir })
  const envOf = (name: ServiceName, index: number) => childEnv(settings(name, index))

  const instances = {} as Record<ServiceName, RunningService[]>
  const services = {} as Record<ServiceName, RunningService>
  const all = () => SERVICES.flatMap(({ name }) => instances[name] ?? [])
  let stopping = false
  /** Processes stopped on purpose (kill, restart): their exit is no `onExit`. */
  const expectedExits = new WeakSet<ChildProcess>()

  function spawnService(name: ServiceName, index: number): RunningService {
    const profileDir = opts.cpuProfDir ? join(opts.cpuProfDir, label({ name, index })) : undefined
    const child = spawn(process.execPath, [...childExecArgv(profileDir), ...(opts.nodeArgs ?? []), 'src/server.ts'], {
      cwd: join(repoRoot, 'services', name),
      env: envOf(name, index),
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
        opts.onLine?.(name, line, stream, index)
      })
    }
    child.on('error', (error) => {
      output += `\n[spawn error] ${error.message}\n`
    })
    const port = ports[name][index] as number
    const service: RunningService = { name, index, port, url: url(name, index), child, output: () => output }
    child.once('exit', (code, signal) => {
      if (!stopping && !expectedExits.has(child)) opts.onExit?.(service, { code, signal })
    })
    instances[name][index] = service
    if (index === 0) services[name] = service
    return service
  }

  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000
  async function stop(): Promise<void> {
    stopping = true
    // The gateways first, then what they call: no request of theirs meets a closing downstream.
    const stopAll = (list: RunningService[]) =>
      Promise.all(list.map((service) => stopChild(service.child, { timeoutMs: stopTimeoutMs })))
    await stopAll(instances.gateway ?? [])
    await stopAll(all())
    if (found.postgresUrl && !opts.keepSchemas) {
      await dropSchemas(found.postgresUrl, [schemas.messageStore, schemas.runService])
    }
    if (found.redisUrl && !opts.redisClusterNodes) await deleteRedisKeys(found.redisUrl, redisKeyPrefix)
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  }

  for (const { name } of SERVICES) {
    instances[name] = []
    for (let index = 0; index < counts[name]; index++) spawnService(name, index)
  }
  const output = () =>
    all()
      .map((service) => `--- ${label(service)} ---\n${service.output() || '(no output)'}`)
      .join('\n')

  const readyTimeoutMs = opts.readyTimeoutMs ?? 45_000
  const deadline = Date.now() + readyTimeoutMs
  // The gateway is ready only once its downstreams are; waiting on every process names the one that fails.
  try {
    await Promise.all(all().map((service) => waitReady(service, deadline)))
  } catch (error) {
    await stop().catch(() => {})
    throw error
  }

  /** The process `index` of `name`, or a clear error. */
  function instance(name: ServiceName, index: number): RunningService {
    const service = instances[name][index]
    if (!service) throw new Error(`no process ${index} of ${name} (${instances[name].length} started)`)
    return service
  }

  async function kill(name: ServiceName, signal: NodeJS.Signals = 'SIGKILL', index = 0): Promise<ServiceExit> {
    const service = instance(name, index)
    const { child } = service
    expectedExits.add(child)
    if (!hasExited(child)) child.kill(signal)
    if (!(await waitExit(child, SIGNAL_EXIT_TIMEOUT_MS))) {
      await stopChild(child, { signal: 'SIGKILL' })
      throw new Error(
        `${label(service)} did not exit within ${SIGNAL_EXIT_TIMEOUT_MS} ms of ${signal}:\n${service.output()}`,
      )
    }
    return { code: child.exitCode, signal: child.signalCode }
  }

  async function restart(name: ServiceName, index = 0): Promise<RunningService> {
    const old = instance(name, index)
    expectedExits.add(old.child)
    await stopChild(old.child, { timeoutMs: stopTimeoutMs })
    const service = spawnService(name, index)
    await waitReady(service, Date.now() + readyTimeoutMs)
    return service
  }

  return {
    gatewayUrl: url('gateway'),
    gatewayUrls: urls('gateway'),
    services,
    instances,
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
 * TEST_REDIS_URL, see scripts/test.mjs), unless `postgresUrl` names a test's own server, or
 * `redisClusterNodes` a test's own Redis Cluster. Stopped at `t`'s
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
    // a test's own cluster instead of the shared Redis
    redisUrl: opts.redisClusterNodes ? undefined : found.redisUrl,
    // a test's own Postgres is thrown away with its data directory
    keepSchemas: opts.postgresUrl !== undefined,
    onExit: (service, exit) =>
      t.fail(`${label(service)} exited during the test (${exit.signal ?? exit.code}):\n${service.output()}`),
  })
  t.teardown(async () => {
    if (!t.passing()) t.comment(`output of the services:\n${stack.output()}`)
    await stack.stop()
  })
  return stack
}
