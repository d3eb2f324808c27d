import {
  createMessageStoreClient,
  logRotationChanges,
  type MessageStoreClient,
  parseBaseUrls,
} from '@session-runtime/clients'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** The message-store's internal API (deleting a flow deletes its messages there). */
    messageStore: MessageStoreClient
  }
}

export interface MessageStoreOptions {
  /** MESSAGE_STORE_URL: one base URL, or several comma-separated (one per instance). */
  url: string
  internalToken: string
  /** Several instances: how often each one's `GET /ready` is polled. */
  healthIntervalMs?: number
}

/**
 * The typed message-store client on keep-alive pools, one per instance, requests spread over the instances
 * in rotation (an instance leaving or re-entering it is logged); closed with the app.
 */
async function messageStore(app: FastifyInstance, opts: MessageStoreOptions) {
  const client = createMessageStoreClient({
    url: parseBaseUrls(opts.url, 'MESSAGE_STORE_URL'),
    internalToken: opts.internalToken,
    healthIntervalMs: opts.healthIntervalMs,
    onRotationChange: logRotationChanges(app.log, 'message-store'),
  })
  app.addHook('onClose', () => client.close())
  app.decorate('messageStore', client)
}

export default fp(messageStore, { name: 'message-store-client' })
