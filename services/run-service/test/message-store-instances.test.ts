import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { buildApp as buildMessageStore } from '@session-runtime/message-store/app'
import { loadConfig as loadMessageStoreConfig } from '@session-runtime/message-store/config'
import type { MessageInput } from '@session-runtime/schemas'
import { testStorageEnv, waitFor } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import { loadConfig } from '../src/config.js'
import { backends, buildTestApp, dropSchema, INTERNAL_TOKEN, uniqueName } from './helpers/app.js'

/** One real message-store instance on `schema` (shared by the instances), counting the writes it receives. */
async function startInstance(t: Test, schema: string) {
  const store = await buildMessageStore(
    loadMessageStoreConfig(testStorageEnv(schema, INTERNAL_TOKEN) as NodeJS.ProcessEnv),
  )
  const writes: string[] = []
  store.addHook('onRequest', async (request) => {
    if (request.method === 'POST') writes.push(request.url)
  })
  await store.listen({ host: '127.0.0.1', port: 0 })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await store.close()
  }
  t.teardown(close)
  return { url: `http://127.0.0.1:${(store.server.address() as AddressInfo).port}`, writes, close }
}

const FLOW = randomUUID()
const message = (text: string): MessageInput => ({
  id: randomUUID(),
  flow_id: FLOW,
  session_id: 'several-instances',
  sender: 'User',
  sender_name: 'User',
  text,
})

t.test('the run-service writes to two message-store instances; one closed, writes go on, none twice', async (t) => {
  if (!backends.postgresUrl) {
    // two message-store instances must share one database: PGlite is embedded in one process
    t.comment('left out: several message-store instances need one real Postgres')
    return
  }
  const schema = uniqueName('ms_two')
  t.teardown(() => dropSchema(schema))
  // one after the other: the first creates the tables
  const a = await startInstance(t, schema)
  const b = await startInstance(t, schema)
  const app = await buildTestApp(t, {
    messageStoreUrl: `${a.url},${b.url}`,
    env: { MESSAGE_STORE_HEALTH_INTERVAL_MS: '100' },
  })
  const client = app.messageStore
  t.same(client.instances(), [a.url, b.url])

  const sent: MessageInput[] = []
  for (let i = 0; i < 6; i++) {
    const input = message(`before ${i}`)
    sent.push(input)
    await client.storeMessage('tenant-a', input)
  }
  t.ok(a.writes.length > 0 && b.writes.length > 0, 'writes are spread over both instances')

  await a.close()
  const seenByA = a.writes.length
  for (let i = 0; i < 6; i++) {
    const input = message(`after ${i}`)
    sent.push(input)
    await client.storeMessage('tenant-a', input)
  }
  const batch = [message('batch 1'), message('batch 2')]
  sent.push(...batch)
  await client.storeMessages('tenant-a', batch)
  t.equal(a.writes.length, seenByA, 'nothing reached the closed instance')
  await waitFor(() => client.instances().length === 1, 'the closed instance leaves the rotation')
  t.same(client.instances(), [b.url])

  const stored = await client.history('tenant-a', { flow_id: FLOW, session_id: 'several-instances', limit: 100 })
  t.equal(stored.length, sent.length, 'every message stored once')
  t.same(new Set(stored.map((one) => one.id)), new Set(sent.map((one) => one.id)))
  t.same(
    stored.map((one) => one.text),
    sent.map((one) => one.text),
    'in the order written',
  )
})

t.test('config: MESSAGE_STORE_URL takes a comma list; a bad entry fails the start naming it', async (t) => {
  const base = { INTERNAL_TOKEN, DATA_DIR: 'memory://' }
  const config = loadConfig({ ...base, MESSAGE_STORE_URL: 'http://10.0.0.1:7862,http://10.0.0.2:7862' })
  t.equal(config.MESSAGE_STORE_URL, 'http://10.0.0.1:7862,http://10.0.0.2:7862')
  t.equal(config.MESSAGE_STORE_HEALTH_INTERVAL_MS, 1000)
  t.throws(() => loadConfig({ ...base, MESSAGE_STORE_URL: 'http://10.0.0.1:7862,message-store:7862' }), {
    message: /^MESSAGE_STORE_URL: entry 2 of 2 \("message-store:7862"\) is not an http\(s\) URL$/,
  })
})
