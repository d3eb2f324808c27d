// LISTEN_BACKLOG reaches the socket: while a service's event loop does not run (the process stopped with
// SIGSTOP, as a loop busy for a moment looks from outside), the kernel completes the handshakes of at most
// backlog + 1 connections (Linux); the others are left unanswered. Node's own backlog is 511.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const CHILD = fileURLToPath(new URL('./fixtures/serve-child.ts', import.meta.url))
const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))

async function stoppedServer(t: Test, backlog?: number): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['--conditions=@session-runtime/source', '--import', 'tsx', CHILD, ...(backlog ? [String(backlog)] : [])],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  t.teardown(() => {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  const { port } = await new Promise<{ port: number }>((resolve, reject) => {
    child.stdout?.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as { port: number }))
    child.once('exit', (code) => reject(new Error(`the server exited (${code})`)))
  })
  child.kill('SIGSTOP')
  return { port, child }
}

/** Opens `count` connections at once; how many complete their handshake within `ms`. */
async function connected(t: Test, port: number, count: number, ms: number): Promise<number> {
  const sockets: Socket[] = []
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
  })
  const outcomes = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port })
          sockets.push(socket)
          const timer = setTimeout(() => resolve(false), ms)
          socket.once('connect', () => {
            clearTimeout(timer)
            resolve(true)
          })
          socket.once('error', () => {
            clearTimeout(timer)
            resolve(false)
          })
        }),
    ),
  )
  return outcomes.filter(Boolean).length
}

t.test('the backlog given to serve holds that many connections while the loop does not run', async (t) => {
  const backlog = Math.min(700, somaxconn)
  const { port } = await stoppedServer(t, backlog)
  t.equal(await connected(t, port, backlog + 100, 1500), backlog + 1)
})

t.test("without one, Node's 511", async (t) => {
  const { port } = await stoppedServer(t)
  t.equal(await connected(t, port, 700, 1500), Math.min(511, somaxconn) + 1)
})
