import type { FastifyReply } from 'fastify'

/** A signal that aborts when the client goes away before the answer is complete: that cancels the run. */
export function cancelledByClient(reply: FastifyReply): AbortSignal {
  const cancel = new AbortController()
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) cancel.abort(new Error('the client closed the connection'))
  })
  return cancel.signal
}
