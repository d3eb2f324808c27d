import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'

/** How long in-flight requests get to finish after SIGTERM/SIGINT before the process exits anyway. */
const CLOSE_GRACE_MS = 10_000

/**
 * What every service's server.ts does with its built app: close it gracefully on a
 * signal or an uncaught error (in-flight requests finish, onClose hooks release pools
 * and clients), then listen (`backlog`: LISTEN_BACKLOG; default Node's 511).
 */
export async function serve(
  app: FastifyInstance,
  address: { host: string; port: number; backlog?: number },
): Promise<void> {
  closeWithGrace({ delay: CLOSE_GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  await app.listen(address)
}
