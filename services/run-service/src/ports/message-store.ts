import type { MessageStoreClient } from '@session-runtime/clients'
import type { MessagePort } from '../engine/index.js'

/** The engine's message port on the message-store, for one tenant (every call carries the request id). */
export function messageStorePort(client: MessageStoreClient, tenant: string, requestId: string): MessagePort {
  return {
    store: (message, { signal }) => client.storeMessage(tenant, message, { signal, requestId }),
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
