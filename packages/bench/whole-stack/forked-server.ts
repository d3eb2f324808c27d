import type { FastifyInstance } from 'fastify'

/**
 * A bench server that run.ts starts in a process of its own (the baseline, the bare proxy): built from the
 * first IPC message, listening on a free port of 127.0.0.1, which it sends back; closed on SIGTERM, and
 * gone as soon as the parent is.
 */
export function serveWhenTold<T>(build: (start: T) => Promise<FastifyInstance>): void {
  process.once('message', (start: T) => {
    void (async () => {
      const app = await build(start)
      await app.listen({ host: '127.0.0.1', port: 0 })
      const { port } = app.server.address() as { port: number }
      process.send?.({ port })
      process.once('SIGTERM', () => {
        void app.close().then(() => process.exit(0))
      })
    })()
  })
  process.on('disconnect', () => process.exit(0))
}
