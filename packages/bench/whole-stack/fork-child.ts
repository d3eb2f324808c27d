import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { childExecArgv } from '@session-runtime/stack'

const here = fileURLToPath(new URL('.', import.meta.url))

export interface ForkedServer {
  name: string
  pid: number
  url: string
  child: ChildProcess
}

/**
 * A bench server of this folder (the baseline, the bare proxy: see forked-server.ts) in a process of its own,
 * told what to serve over IPC; resolves with its URL once it listens. Its output lines go to `onLine`.
 */
export async function startForked(
  name: string,
  file: string,
  start: unknown,
  opts: { cpuProfDir?: string; onLine: (line: string, stream: 'stdout' | 'stderr') => void },
): Promise<ForkedServer> {
  const child = fork(join(here, file), [], {
    execArgv: childExecArgv(opts.cpuProfDir ? join(opts.cpuProfDir, name) : undefined),
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  for (const [from, stream] of [
    [child.stdout, 'stdout'],
    [child.stderr, 'stderr'],
  ] as const) {
    if (from) {
      createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (l) => opts.onLine(l, stream))
    }
  }
  const ready = new Promise<{ port: number }>((resolve, reject) => {
    child.once('message', (msg) => resolve(msg as { port: number }))
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
  })
  child.send(start as object)
  const { port } = await ready
  return { name, pid: child.pid ?? -1, url: `http://127.0.0.1:${port}`, child }
}
