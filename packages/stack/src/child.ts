// Child processes of the harnesses: how they are started, waited for, stopped, and never left behind.
import type { ChildProcess } from 'node:child_process'

/** How a harness starts a service or a server of its own: from the TypeScript sources, profiled into `cpuProfDir` if given. */
export function childExecArgv(cpuProfDir?: string): string[] {
  const execArgv = ['--conditions=@session-runtime/source', '--import', 'tsx']
  if (cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`)
  return execArgv
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Polls `check` every `everyMs` until it holds; throws naming `what` once `timeoutMs` has passed. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(everyMs)
  }
}

/** Resolves true once the child has exited, false after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true)
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

export interface StopOptions {
  /** What is sent first; default SIGTERM. */
  signal?: NodeJS.Signals
  /** How long the child has to exit before SIGKILL (milliseconds). */
  timeoutMs?: number
  /** How long to wait for the exit after SIGKILL. */
  killTimeoutMs?: number
}

/** `signal` (SIGTERM), then SIGKILL if the child has not exited within the bound; resolves true if it exited on `signal`. */
export async function stopChild(child: ChildProcess, opts: StopOptions = {}): Promise<boolean> {
  if (hasExited(child)) return true
  child.kill(opts.signal ?? 'SIGTERM')
  if (await waitExit(child, opts.timeoutMs ?? 5_000)) return true
  child.kill('SIGKILL')
  await waitExit(child, opts.killTimeoutMs ?? 2_000)
  return false
}

/** The newest `keep` characters of a child's stdout and stderr (for failure messages). */
export function keepOutput(child: ChildProcess, keep = 16_000): () => string {
  let output = ''
  const add = (chunk: Buffer | string) => {
    output = (output + chunk.toString()).slice(-keep)
  }
  child.stdout?.on('data', add)
  child.stderr?.on('data', add)
  child.on('error', (error) => add(`\n[spawn error] ${error.message}\n`))
  return () => output
}

// Children that must not outlive this process, with how each is ended.
const leftBehind = new Map<ChildProcess, () => void>()
let onExitHooked = false
let onSignalsHooked = false
const endAll = () => {
  for (const end of leftBehind.values()) end()
}

/**
 * Ends `child` (by `end`, default SIGKILL) if this process exits first. With `onSignals`, on SIGTERM and SIGINT
 * too (as when tap stops a test file on its timeout), after which this process dies of the signal as it would
 * have: only for programs that have no SIGTERM or SIGINT handler of their own.
 */
export function endWithProcess(
  child: ChildProcess,
  end: () => void = () => child.kill('SIGKILL'),
  opts: { onSignals?: boolean } = {},
): void {
  leftBehind.set(child, end)
  child.once('exit', () => leftBehind.delete(child))
  if (!onExitHooked) {
    onExitHooked = true
    process.on('exit', endAll)
  }
  if (opts.onSignals && !onSignalsHooked) {
    onSignalsHooked = true
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        endAll()
        process.kill(process.pid, signal)
      })
    }
  }
}

/** What a harness needs of a tap test (or anything like one): clean-up when it ends. */
export interface Teardown {
  teardown(fn: () => unknown): void
}
