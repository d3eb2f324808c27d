// A redis-server of a test's own (never the shared instance), on a free port of 127.0.0.1, that the test
// may kill, freeze (SIGSTOP: connections stay open, nothing answers) and start again, empty or, with
// `persistent`, with the snapshot it saved. Killed and removed when the test ends, and when the process exits.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisAnswers } from './backends.js'
import { endWithProcess, hasExited, type Teardown, waitFor } from './child.js'
import { freePort } from './free-ports.js'

/** Whether this machine has a redis-server program. */
export const hasRedisServer = (): boolean => spawnSync('redis-server', ['--version']).status === 0

/** SIGCONT first: a frozen server would not die of SIGKILL until it is woken. */
function killNow(proc: ChildProcess) {
  proc.kill('SIGCONT')
  proc.kill('SIGKILL')
}

export interface RedisServerOptions {
  /** A directory of its own (removed at the end), where it loads and saves dump.rdb. */
  persistent?: boolean
  /** This port instead of a free one. */
  port?: number
  /** More arguments of redis-server, after the harness's own. */
  args?: readonly string[]
}

export class RedisServer {
  proc: ChildProcess | undefined
  private constructor(
    readonly port: number,
    /** With a directory, the server loads and saves dump.rdb there. */
    readonly dir?: string,
    /** More arguments of redis-server (e.g. the cluster's settings). */
    readonly args: readonly string[] = [],
  ) {}

  /**
   * A server on a free port (or `port`), not started yet; killed (and its directory removed) when `t` ends.
   * `args` are given to redis-server after the harness's own (port, bind, no persistence).
   */
  static async create(t: Teardown, opts: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = opts.persistent ? await mkdtemp(join(tmpdir(), 'redis-server-')) : undefined
    const server = new RedisServer(opts.port ?? (await freePort()), dir, opts.args)
    t.teardown(async () => {
      await server.kill()
      if (dir) await rm(dir, { recursive: true, force: true })
    })
    return server
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts the server and waits until it answers PING. */
  async start(timeoutMs = 10_000): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
    if (this.dir) args.push('--dir', this.dir, '--dbfilename', 'dump.rdb')
    args.push(...this.args)
    const proc = spawn('redis-server', args, { stdio: 'ignore' })
    this.proc = proc
    endWithProcess(proc, () => killNow(proc), { onSignals: true })
    await waitFor(() => redisAnswers(this.url), `redis-server on port ${this.port}`, timeoutMs, 25)
  }

  /** SIGKILL (a crash: nothing saved); resolves once it has exited. */
  async kill(): Promise<void> {
    const proc = this.proc
    if (!proc || hasExited(proc)) return
    const exited = once(proc, 'exit')
    killNow(proc)
    await exited
  }

  /** SIGSTOP: a network partition, as the clients see it. */
  freeze(): void {
    this.proc?.kill('SIGSTOP')
  }

  thaw(): void {
    this.proc?.kill('SIGCONT')
  }

  /** Sends one inline command and answers the raw reply (enough for SAVE and DBSIZE). */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: this.port })
      let reply = ''
      socket.setTimeout(5000, () => {
        socket.destroy()
        reject(new Error(`redis ${line}: timeout`))
      })
      socket.on('error', reject)
      socket.on('connect', () => socket.write(`${line}\r\n`))
      socket.on('data', (d) => {
        reply += d.toString()
        if (reply.endsWith('\r\n')) {
          socket.destroy()
          resolve(reply.trim())
        }
      })
    })
  }
}

/** `RedisServer.create`, started. */
export async function startRedisServer(t: Teardown, opts: RedisServerOptions = {}): Promise<RedisServer> {
  const server = await RedisServer.create(t, opts)
  await server.start()
  return server
}
