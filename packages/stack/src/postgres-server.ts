// A Postgres server of a test's own (never the shared instance): `initdb` into a temporary directory, the
// postmaster on a free port of 127.0.0.1; as the `postgres` OS user when the test runs as root, since
// Postgres refuses root. Stopped (immediately) and removed when the test ends, and when the process exits.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { endWithProcess, hasExited, keepOutput, type Teardown, waitExit, waitFor } from './child.js'
import { freePort } from './free-ports.js'

/** The newest installed Postgres server binaries (Debian: /usr/lib/postgresql/<major>/bin). */
export async function postgresBin(): Promise<string | undefined> {
  const base = '/usr/lib/postgresql'
  const majors = existsSync(base) ? (await readdir(base)).filter((v) => /^\d+$/.test(v)) : []
  const found = majors
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(base, v, 'bin'))
    .find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres')))
  return found
}

// Postgres refuses to run as root: then it runs as the `postgres` user, through setpriv, which execs
// (so the child process IS the postmaster, and signals reach it directly).
export const asRoot = process.getuid?.() === 0
function asPostgresUser(cmd: string, args: string[]): [string, string[]] {
  return asRoot
    ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]]
    : [cmd, args]
}

export class PostgresServer {
  proc: ChildProcess | undefined
  private log = () => ''
  private constructor(
    readonly bin: string,
    readonly dir: string,
    readonly port: number,
  ) {}

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  output() {
    return this.log().slice(-4000)
  }

  /** Which server this is, for a test's output. */
  describe() {
    return `own Postgres: ${this.bin}, port ${this.port}, ${asRoot ? 'as the postgres user (setpriv)' : 'as this user'}`
  }

  /** A new cluster (initdb) in a temporary directory, on a free port, not started; stopped and removed when `t` ends. */
  static async create(t: Teardown, bin: string): Promise<PostgresServer> {
    const dir = await mkdtemp(join(tmpdir(), 'pg-server-'))
    const server = new PostgresServer(bin, dir, await freePort())
    t.teardown(async () => {
      await server.stop('immediate')
      await rm(dir, { recursive: true, force: true })
    })
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString())
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString())
      await chown(dir, uid, gid)
    }
    const [cmd, args] = asPostgresUser(join(bin, 'initdb'), [
      '-D',
      join(dir, 'data'),
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--no-sync',
    ])
    execFileSync(cmd, args, { stdio: 'pipe', timeout: 60_000 })
    return server
  }

  /** Starts the postmaster and waits until it accepts connections. */
  async start(): Promise<void> {
    const [cmd, args] = asPostgresUser(join(this.bin, 'postgres'), [
      '-D',
      join(this.dir, 'data'),
      '-p',
      String(this.port),
      '-k',
      this.dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=40',
    ])
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    // Never outlives this process: an immediate shutdown.
    endWithProcess(proc, () => proc.kill('SIGQUIT'))
    const earlier = this.log
    const current = keepOutput(proc)
    this.log = () => (earlier() + current()).slice(-16_000)
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`postgres exited (${proc.exitCode}):\n${this.output()}`)
      return this.accepts()
    }, `postgres on port ${this.port}`)
  }

  /** True when a new connection runs a query. */
  async accepts(): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000, statement_timeout: 2000 })
    try {
      await client.connect()
      await client.query('SELECT 1')
      return true
    } catch {
      return false
    } finally {
      await client.end().catch(() => {})
    }
  }

  /** `fast`: SIGINT (sessions terminated, clean shutdown); `immediate`: SIGQUIT (crash; recovery at start). */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    const proc = this.proc
    if (!proc || hasExited(proc)) return
    const exited = once(proc, 'exit')
    proc.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT')
    if (!(await waitExit(proc, 20_000))) {
      proc.kill('SIGKILL')
      await exited
    }
  }
}

/** `PostgresServer.create`, started. */
export async function startPostgresServer(t: Teardown, bin: string): Promise<PostgresServer> {
  const server = await PostgresServer.create(t, bin)
  await server.start()
  return server
}
