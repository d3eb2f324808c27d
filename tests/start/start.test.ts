// `pnpm start` (scripts/start.mjs) as a new user runs it: embedded PGlite in a fresh DATA_DIR, no Postgres,
// no Redis. It says "ready" only once every service answers /ready (on a busy machine PGlite took 28 s longer
// than the gateway, and a curl in that window got a 503); a service that cannot start is named with its error,
// the others are stopped, and it exits non-zero.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts, repoRoot as root } from '@session-runtime/stack'
import t, { type Test } from 'tap'

const READY_LINE = /^ready: (\S+) .*· Playground: (\S+)$/

interface Launcher {
  child: ChildProcess
  stdout: string[]
  stderr: () => string
  /** The services' pids, from the launcher's "starting <name> on <url> (pid N)" lines. */
  pids: Map<string, number>
  urls: Map<string, string>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Runs `node scripts/start.mjs` on free ports and a temporary DATA_DIR; `extra` adds settings. */
async function launch(t: Test, extra: Record<string, string> = {}): Promise<Launcher> {
  const [storePort, runPort, gatewayPort] = await freePorts(3)
  const dataDir = mkdtempSync(join(tmpdir(), 'start-test-'))
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    // nothing of this machine's stack settings: the launcher's defaults, as on a new user's machine
    if (!/^(DATABASE_|REDIS_|API_KEYS$|INTERNAL_TOKEN$|HOST$|DATA_DIR$|.*_PORT$|.*_URL$)/.test(name)) env[name] = value
  }
  Object.assign(env, {
    DATA_DIR: dataDir,
    MESSAGE_STORE_PORT: String(storePort),
    RUN_SERVICE_PORT: String(runPort),
    GATEWAY_PORT: String(gatewayPort),
    LOG_LEVEL: 'warn',
    // a busy machine took a minute; the test's own wait (lineMatching) is longer, tap's (300 s) longer still
    START_TIMEOUT_MS: '180000',
    ...extra,
  })
  const child = spawn(process.execPath, ['scripts/start.mjs'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const launcher: Launcher = {
    child,
    stdout: [],
    stderr: () => stderr,
    pids: new Map(),
    urls: new Map(),
    exited: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
  }
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  let partial = ''
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      launcher.stdout.push(line)
      const started = /^starting (\S+) on (\S+) \(pid (\d+)\)$/.exec(line)
      if (started) {
        launcher.urls.set(started[1] ?? '', started[2] ?? '')
        launcher.pids.set(started[1] ?? '', Number(started[3]))
      }
    }
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await launcher.exited
    }
    for (const pid of launcher.pids.values()) if (alive(pid)) process.kill(pid, 'SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  })
  return launcher
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The first stdout line matching `pattern`; undefined when the launcher exits first or after `waitMs`. */
async function lineMatching(launcher: Launcher, pattern: RegExp, waitMs = 200_000): Promise<string | undefined> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const line = launcher.stdout.find((l) => pattern.test(l))
    if (line || Date.now() > deadline) return line
    const exited = await Promise.race([
      launcher.exited.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 20)),
    ])
    if (exited) return launcher.stdout.find((l) => pattern.test(l))
  }
}

t.test('pnpm start says ready only when every service answers /ready, with the key and the Playground', async (t) => {
  const launcher = await launch(t)
  const line = await lineMatching(launcher, READY_LINE)
  // at once, before anything else can become ready: every /ready answers 200 and a run goes through
  const names = ['message-store', 'run-service', 'gateway']
  const readies = await Promise.all(
    names.map((name) =>
      fetch(`${launcher.urls.get(name)}/ready`).catch((err: Error) => ({ status: String(err.cause ?? err) })),
    ),
  )
  if (!line) t.fail(`no ready line:\n${launcher.stdout.join('\n')}\n${launcher.stderr()}`)
  t.same(
    readies.map((res) => res.status),
    [200, 200, 200],
    'message-store, run-service and gateway /ready: 200 when the line appears',
  )
  const [, gatewayUrl = '', playground = ''] = READY_LINE.exec(line ?? '') ?? []
  t.equal(gatewayUrl, launcher.urls.get('gateway'), 'the line names the gateway URL')
  t.equal(playground, `${gatewayUrl}/playground/`, 'and the Playground URL')
  const key = /API key: (sk-\S+) \(created now/.exec(line ?? '')?.[1]
  t.ok(key, 'the key the gateway created is in the line')
  t.ok(
    launcher.stdout.some((l) => l.includes(`created API key for tenant "default"`) && l.includes(key ?? '-')),
    "the gateway's own line with the key stays visible",
  )
  const run = await fetch(`${gatewayUrl}/api/v1/run/memory-echo`, {
    method: 'POST',
    headers: { 'x-api-key': key ?? '', 'content-type': 'application/json' },
    body: JSON.stringify({ input_value: 'hello', session_id: 'start-test' }),
  })
  t.equal(run.status, 200, 'a run through the gateway at once: 200')
  t.match(await run.text(), /You said: hello/)

  // progress first: one line per service as it became ready, all before the ready line
  const at = (pattern: RegExp) => launcher.stdout.findIndex((l) => pattern.test(l))
  t.ok(at(/^waiting for message-store, run-service, gateway/) >= 0, 'says what it waits for')
  for (const name of names) {
    const ready = at(new RegExp(`^${name} is ready \\(`))
    t.ok(ready >= 0 && ready < at(READY_LINE), `"${name} is ready" before the ready line`)
  }
  t.equal(launcher.stdout.filter((l) => READY_LINE.test(l)).length, 1, 'one ready line')

  launcher.child.kill('SIGTERM')
  t.same(await launcher.exited, { code: 0, signal: null }, 'stopped with SIGTERM: exits 0')
  for (const [name, pid] of launcher.pids) t.notOk(alive(pid), `${name} (pid ${pid}) has exited`)
})

t.test('a service that cannot start is named with its error; the others are stopped; exit 1', async (t) => {
  // a setting only the message-store reads, out of its range: it exits at once, the others would start
  const launcher = await launch(t, { BODY_MAX_DEPTH: '5000' })
  const exit = await launcher.exited
  t.same(exit, { code: 1, signal: null }, 'the launcher exits 1')
  const stderr = launcher.stderr()
  t.match(
    stderr,
    /^message-store failed to start: exited with code 1 \(Error: env\/BODY_MAX_DEPTH must be <= 1000\)$/m,
    'names the service, its exit and its error',
  )
  t.match(stderr, /last lines of its stderr:\n( {2}\| .*\n)+/, 'shows the end of its stderr')
  t.match(stderr, /stopping (run-service, gateway|run-service|gateway)$/m, 'stops the others')
  t.notOk(
    launcher.stdout.some((l) => READY_LINE.test(l)),
    'never says ready',
  )
  t.equal(launcher.pids.size, 3, 'three services were started')
  for (const [name, pid] of launcher.pids) t.notOk(alive(pid), `${name} (pid ${pid}) is not left running`)
})
