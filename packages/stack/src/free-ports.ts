// Free TCP ports of 127.0.0.1, for servers started by a harness.
import { type AddressInfo, createServer, type Server } from 'node:net'

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

/** One free port. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1)
  return port as number
}
