import { type MessageStoreClient, MessageStoreUnavailableError } from '@session-runtime/clients'
import type { UnconfirmedMessages } from '../domain/unconfirmed-messages.js'
import type { MessagePort } from '../engine/index.js'

/**
 * The engine's message port on the message-store, for one tenant (every call carries the request id).
 * A write that fails without a definite answer (the store unavailable after retries, or the run cancelled
 * while it was in flight) may still have committed: it is recorded in `unconfirmed`, which settles it as
 * failed. Such a failure always fails the run.
 */
export function messageStorePort(
  client: MessageStoreClient,
  tenant: string,
  requestId: string,
  unconfirmed: UnconfirmedMessages,
): MessagePort {
  return {
    store: async (message, { signal }) => {
      const abortedBefore = signal.aborted
      try {
        return await client.storeMessage(tenant, message, { signal, requestId })
      } catch (err) {
        if (err instanceof MessageStoreUnavailableError || (signal.aborted && !abortedBefore)) {
          unconfirmed.record(tenant, message)
        }
        throw err
      }
    },
    history: (query, { signal }) =>
      client.history(
        tenant,
        {
          flow_id: query.flowId,
          session_id: query.sessionId,
          limit: query.limit,
          order: query.order,
          ...(query.sender !== undefined ? { sender: query.sender } : {}),
          ...(query.senderName !== undefined ? { sender_name: query.senderName } : {}),
        },
        { signal, requestId },
      ),
  }
}
