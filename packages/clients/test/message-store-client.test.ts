import { setImmediate } from 'node:timers/promises'
import { BATCH_MAX, INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import t from 'tap'
import { CLIENT_MESSAGE_STORE_BAD_RESPONSE, createMessageStoreClient, MessageStoreError } from '../src/index.js'
import { FLOW_ID, makeInput, TOKEN } from './helpers/fake-message-store.js'
import { setup } from './helpers/setup.js'

t.test('storeMessage sends the trusted headers and the input, and types the answer', async (t) => {
  const { store, client } = await setup(t)
  const input = makeInput({ text: 'héllo', properties: { source: 'test' } })

  const message = await client.storeMessage('tenant-a', input, { requestId: 'req-1' })

  t.equal(message.id, input.id)
  t.equal(message.text, 'héllo')
  t.same(message.properties, { source: 'test' })
  t.equal(message.category, 'message')
  t.type(message.timestamp, 'string')
  t.equal(store.seen.length, 1)
  const [request] = store.seen
  t.equal(request?.method, 'POST')
  t.equal(request?.url, '/internal/messages')
  t.equal(request?.headers[INTERNAL_TOKEN_HEADER], TOKEN)
  t.equal(request?.headers[TENANT_HEADER], 'tenant-a')
  t.equal(request?.headers[REQUEST_ID_HEADER], 'req-1')
  t.match(request?.headers['content-type'], /^application\/json/)
  t.same(request?.body, input)
  t.ok(store.stored.get('tenant-a')?.has(input.id), 'stored under the tenant')
})

t.test('storeMessage replay answers the stored message (200)', async (t) => {
  const { store, client } = await setup(t)
  const input = makeInput()
  const first = await client.storeMessage('tenant-a', input)
  const replay = await client.storeMessage('tenant-a', { ...input, text: 'changed' })
  t.same(replay, first)
  t.equal(store.stored.get('tenant-a')?.size, 1)
})

t.test('no x-request-id header without a requestId', async (t) => {
  const { store, client } = await setup(t)
  await client.storeMessage('tenant-a', makeInput())
  t.equal(store.seen[0]?.headers[REQUEST_ID_HEADER], undefined)
})

t.test('a wrong token surfaces the 401 envelope', async (t) => {
  const { store } = await setup(t)
  const client = createMessageStoreClient({ url: store.url, internalToken: 'wrong' })
  t.teardown(() => client.close())
  const error = await client.storeMessage('tenant-a', makeInput()).catch((err: unknown) => err)
  t.ok(error instanceof MessageStoreError)
  t.match(error, { statusCode: 401, code: 'MSGSTORE_UNAUTHORIZED', detail: 'bad internal token' })
})

t.test('storeMessages splits 2500 inputs into 3 batches and keeps input order', async (t) => {
  const { store, client } = await setup(t)
  const inputs = Array.from({ length: 2500 }, (_, i) => makeInput({ text: `message ${i}` }))

  const messages = await client.storeMessages('tenant-b', inputs, { requestId: 'req-batch' })

  t.equal(BATCH_MAX, 1000)
  t.equal(store.seen.length, 3)
  t.same(
    store.seen.map((request) => (request.body as { messages: unknown[] }).messages.length),
    [1000, 1000, 500],
  )
  for (const request of store.seen) {
    t.equal(request.method, 'POST')
    t.equal(request.url, '/internal/messages/batch')
    t.equal(request.headers[TENANT_HEADER], 'tenant-b')
    t.equal(request.headers[REQUEST_ID_HEADER], 'req-batch')
  }
  t.same(
    messages.map((message) => message.id),
    inputs.map((input) => input.id),
  )
  t.equal(store.stored.get('tenant-b')?.size, 2500)
})

t.test('storeMessages with exactly BATCH_MAX inputs sends one batch', async (t) => {
  const { store, client } = await setup(t)
  const inputs = Array.from({ length: BATCH_MAX }, () => makeInput())
  const messages = await client.storeMessages('tenant-b', inputs)
  t.equal(store.seen.length, 1)
  t.equal(messages.length, BATCH_MAX)
})

t.test('storeMessages with no inputs sends nothing', async (t) => {
  const { store, client } = await setup(t)
  t.same(await client.storeMessages('tenant-b', []), [])
  t.equal(store.seen.length, 0)
})

t.test('history encodes an awkward session id so it arrives byte for byte', async (t) => {
  const { store, client } = await setup(t)
  const sessionId = 'a b/c%d+e:f@g 😀'
  const inputs = [1, 2, 3].map((i) => makeInput({ session_id: sessionId, text: `m${i}` }))
  await client.storeMessages('tenant-c', inputs)
  await client.storeMessage('tenant-c', makeInput({ session_id: 'a b/c%d e:f@g 😀' }))

  const history = await client.history('tenant-c', {
    flow_id: FLOW_ID,
    session_id: sessionId,
    limit: 2,
    order: 'DESC',
  })

  t.same(
    history.map((message) => message.text),
    ['m3', 'm2'],
  )
  const request = store.seen.at(-1)
  t.equal(request?.method, 'GET')
  t.equal(request?.headers[TENANT_HEADER], 'tenant-c')
  const [path, rawQuery = ''] = (request?.url ?? '').split('?')
  t.equal(path, '/internal/history')
  // space → '+', and '/', '%', '+', ':', '@' and the emoji's UTF-8 bytes percent-encoded
  t.ok(rawQuery.includes('session_id=a+b%2Fc%25d%2Be%3Af%40g+%F0%9F%98%80&'), rawQuery)
  const received = request?.query.session_id ?? ''
  t.ok(Buffer.from(received, 'utf8').equals(Buffer.from(sessionId, 'utf8')), 'same bytes')
  t.same(Object.fromEntries(new URLSearchParams(rawQuery)), {
    flow_id: FLOW_ID,
    session_id: sessionId,
    limit: '2',
    order: 'DESC',
  })
})

t.test('history sends sender filters and leaves unset options out', async (t) => {
  const { store, client } = await setup(t)
  await client.history('tenant-c', {
    flow_id: FLOW_ID,
    session_id: 's',
    sender: 'Machine',
    sender_name: 'AI & co',
  })
  const rawQuery = store.seen[0]?.url.split('?')[1]
  t.same(Object.fromEntries(new URLSearchParams(rawQuery)), {
    flow_id: FLOW_ID,
    session_id: 's',
    sender: 'Machine',
    sender_name: 'AI & co',
  })
})

t.test('sequential calls reuse keep-alive connections', async (t) => {
  const { store, client } = await setup(t)
  for (let i = 0; i < 5; i++) {
    await client.storeMessage('tenant-d', makeInput())
    // let the socket go idle, as between two requests of the run-service
    await setImmediate()
  }
  await client.storeMessages('tenant-d', [makeInput(), makeInput()])
  await setImmediate()
  await client.history('tenant-d', { flow_id: FLOW_ID, session_id: 'session-1' })
  await setImmediate()
  await client.ready()
  t.equal(store.seen.length, 8)
  t.equal(store.connections(), 1, 'one connection for 8 calls')
})

t.test('back-to-back calls stay on at most two connections', async (t) => {
  // undici waits one event-loop turn before reusing a socket (pipelining 1), so a
  // call sent right as the previous answer completes may take a second connection.
  const { store, client } = await setup(t)
  for (let i = 0; i < 20; i++) {
    await client.storeMessage('tenant-d', makeInput())
  }
  t.equal(store.seen.length, 20)
  t.ok(store.connections() <= 2, `${store.connections()} connections for 20 calls`)
})

t.test('ready answers the readiness status', async (t) => {
  const { store, client } = await setup(t)
  t.same(await client.ready({ requestId: 'req-ready' }), {
    status: 'ok',
    postgres: 'up',
    redis: 'disabled',
  })
  t.equal(store.seen[0]?.url, '/ready')
  t.equal(store.seen[0]?.headers[INTERNAL_TOKEN_HEADER], TOKEN)
  t.equal(store.seen[0]?.headers[TENANT_HEADER], undefined)
  t.equal(store.seen[0]?.headers[REQUEST_ID_HEADER], 'req-ready')
})

t.test('a path prefix in the url is kept', async (t) => {
  const { store } = await setup(t, (app) => {
    app.post('/store/internal/messages', async (request, reply) => reply.code(201).send(request.body))
  })
  const client = createMessageStoreClient({ url: `${store.url}/store/`, internalToken: TOKEN })
  t.teardown(() => client.close())
  const input = makeInput()
  t.equal((await client.storeMessage('tenant-a', input)).id, input.id)
  t.equal(store.seen[0]?.url, '/store/internal/messages')
})

t.test('a success answer that is not JSON is a MessageStoreError', async (t) => {
  const { client } = await setup(t, (app) => {
    app.get('/internal/history', async (_request, reply) =>
      reply.code(200).type('text/html').send('<html>proxy</html>'),
    )
  })
  const error = await client.history('tenant-a', { flow_id: FLOW_ID, session_id: 's' }).catch((err: unknown) => err)
  t.ok(error instanceof MessageStoreError)
  t.match(error, { statusCode: 502, code: CLIENT_MESSAGE_STORE_BAD_RESPONSE })
})

t.test('options and arguments are checked', async (t) => {
  t.throws(() => createMessageStoreClient({ url: 'ftp://store', internalToken: TOKEN }), TypeError)
  t.throws(() => createMessageStoreClient({ url: 'not a url', internalToken: TOKEN }), TypeError)
  t.throws(() => createMessageStoreClient({ url: 'http://store', internalToken: '' }), TypeError)

  const { store, client } = await setup(t)
  await t.rejects(client.storeMessage('', makeInput()), TypeError)
  await t.rejects(client.storeMessages('', [makeInput()]), TypeError)
  await t.rejects(client.history('', { flow_id: FLOW_ID, session_id: 's' }), TypeError)
  t.equal(store.seen.length, 0, 'nothing sent without a tenant')
})

t.test('a closed client refuses calls', async (t) => {
  const { store, client } = await setup(t)
  await client.ready()
  await client.close()
  await client.close()
  await t.rejects(client.storeMessage('tenant-a', makeInput()), {
    message: 'message-store client is closed',
  })
  t.equal(store.seen.length, 1)
})
