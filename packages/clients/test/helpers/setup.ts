import type { Test } from 'tap'
import { createMessageStoreClient, type MessageStoreClient, type MessageStoreClientOptions } from '../../src/index.js'
import { type FakeStore, type Routes, startFakeStore, TOKEN } from './fake-message-store.js'

/** A fake store and a client pointed at it, both closed when the test ends. */
export async function setup(
  t: Test,
  routes?: Routes,
  options: Partial<MessageStoreClientOptions> = {},
): Promise<{ store: FakeStore; client: MessageStoreClient }> {
  const store = await startFakeStore(routes)
  const client = createMessageStoreClient({
    url: store.url,
    internalToken: TOKEN,
    retryMinDelay: 10,
    retryMaxDelay: 50,
    ...options,
  })
  t.teardown(() => Promise.all([client.close(), store.close()]))
  return { store, client }
}
