// A TCP relay between clients and a server of a test (Redis, Postgres, a service), on a free port of
// 127.0.0.1, for faults of the link rather than of the server: frozen (bytes held both ways, the
// connections left open), cut (connections reset, new ones reset at once), slow (latency on every chunk).
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Socket } from 'node:net'
import { sleep, type Teardown } from './child.js'

export interface TcpRelayOptions {
  /** Host of the target; default 127.0.0.1. */
  host?: string
  /** Stopped when this test ends. */
  t?: Teardown
}

export interface TcpRelay {
  /** Where clients connect instead of the target. */
  port: number
  /** Open client connections. */
  readonly connections: number
  /** Stops forwarding bytes both ways (held, in order, until `thaw`); connections stay open, new ones are accepted. */
  freeze(): void
  /** Forwards again, first what was held. */
  thaw(): void
  /** Resets every connection (both sides), and every new one at once, until `restore`. */
  cut(): void
  restore(): void
  /** Latency added to every chunk, each way (0: none); chunks keep their order. */
  delay(ms: number): void
  /** Closes the relay and every connection. */
  stop(): Promise<void>
}

/** One direction of one connection: chunks held until they are due and the link is not frozen. */
class Pipe {
  private readonly queue: { chunk: Buffer | 'end'; due: number }[] = []
  private pumping = false
  private ended = false

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly link: { frozen: boolean; delayMs: number },
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk))
    // the end of the stream (or its source gone) passes on in order, after what came before it
    from.on('end', () => this.push('end'))
    from.on('close', () => this.push('end'))
  }

  private push(chunk: Buffer | 'end') {
    if (this.ended) return
    if (chunk === 'end') this.ended = true
    this.queue.push({ chunk, due: Date.now() + this.link.delayMs })
    // frozen: nothing more is read, so the sender's buffers fill as on a stalled link
    if (this.link.frozen) this.from.pause()
    void this.pump()
  }

  async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (!this.link.frozen && this.queue.length > 0 && !this.to.destroyed) {
        const head = this.queue[0] as { chunk: Buffer | 'end'; due: number }
        const wait = head.due - Date.now()
        if (wait > 0) {
          await sleep(wait)
          continue
        }
        this.queue.shift()
        if (head.chunk === 'end') this.to.end()
        else if (!this.to.write(head.chunk)) {
          this.from.pause()
          await Promise.race([once(this.to, 'drain'), once(this.to, 'close')]).catch(() => {})
        }
      }
      if (!this.link.frozen && !this.from.destroyed) this.from.resume()
    } finally {
      this.pumping = false
    }
  }
}

/** Starts a relay to `targetPort` of 127.0.0.1 (or `host`) on a free port. */
export async function startTcpRelay(targetPort: number, opts: TcpRelayOptions = {}): Promise<TcpRelay> {
  const host = opts.host ?? '127.0.0.1'
  const link = { frozen: false, delayMs: 0 }
  let cut = false
  const pairs = new Set<{ client: Socket; upstream: Socket; pipes: Pipe[] }>()

  const server = createServer((client) => {
    if (cut) {
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    const upstream = connect({ host, port: targetPort })
    const pair = {
      client,
      upstream,
      pipes: [new Pipe(client, upstream, link), new Pipe(upstream, client, link)],
    }
    pairs.add(pair)
    // a failed side resets the other at once; a closed one ends the other after what it had sent (Pipe)
    const fail = () => {
      pairs.delete(pair)
      if (!client.destroyed) client.resetAndDestroy()
      if (!upstream.destroyed) upstream.resetAndDestroy()
    }
    client.on('error', fail)
    upstream.on('error', fail)
    const closed = () => {
      if (client.destroyed && upstream.destroyed) pairs.delete(pair)
    }
    client.on('close', closed)
    upstream.on('close', closed)
  })
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  const resetAll = () => {
    for (const { client, upstream } of pairs) {
      if (!client.destroyed) client.resetAndDestroy()
      if (!upstream.destroyed) upstream.resetAndDestroy()
    }
    pairs.clear()
  }

  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    resetAll()
    await closed
  }
  opts.t?.teardown(stop)

  return {
    port,
    get connections() {
      return pairs.size
    },
    freeze() {
      link.frozen = true
    },
    thaw() {
      link.frozen = false
      for (const { pipes } of pairs) for (const pipe of pipes) void pipe.pump()
    },
    cut() {
      cut = true
      resetAll()
    },
    restore() {
      cut = false
    },
    delay(ms) {
      link.delayMs = ms
    },
    stop,
  }
}
