import { createMessageStoreClient, type MessageStoreClient } from '@session-runtime/clients'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** The message-store's internal API (deleting a flow deletes its messages there). */
    messageStore: MessageStoreClient
  }
}

/** The typed message-store client on a keep-alive pool; closed with the app. */
async function messageStore(app: FastifyInstance, opts: { url: string; internalToken: string }) {
  const client = createMessageStoreClient({ url: opts.url, internalToken: opts.internalToken })
  app.addHook('onClose', () => client.close())
  app.decorate('messageStore', client)
}

export default fp(messageStore, { name: 'message-store-client' })
