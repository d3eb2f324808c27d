import t from 'tap'
import {
  CLIENT_MESSAGE_STORE_HTTP_ERROR,
  CLIENT_MESSAGE_STORE_UNAVAILABLE,
  createMessageStoreClient,
  MessageStoreError,
  MessageStoreUnavailableError,
} from '../src/index.js'
import { closedPort, FLOW_ID, makeInput, startFakeStore, TOKEN } from './helpers/fake-message-store.js'
import { setup } from './helpers/setup.js'

const unavailable = { detail: 'database is down', code: 'MSGSTORE_UNAVAILABLE' }

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (err: unknown) => err,
  )
}

t.test('503 answers are retried, resending the same idempotent write', async (t) => {
  let calls = 0
  const { store, client } = await setup(t, (app) => {
    app.post('/internal/messages', async (request, reply) => {
      calls += 1
      if (calls <= 2) return reply.code(503).send(unavailable)
      return reply.code(201).send(request.body)
    })
  })
  const input = makeInput()

  const message = await client.storeMessage('tenant-a', input, { requestId: 'req-retry' })

  t.equal(message.id, input.id)
  t.equal(calls, 3, 'two 503s, then success')
  t.same(
    store.seen.map((request) => request.body),
    [input, input, input],
  )
  t.same(
    store.seen.map((request) => request.headers['x-request-id']),
    ['req-retry', 'req-retry', 'req-retry'],
  )
})

t.test('502 and 504 are retried too, for batches and history', async (t) => {
  let batchCalls = 0
  let historyCalls = 0
  const { client } = await setup(t, (app) => {
    app.post('/internal/messages/batch', async (request, reply) => {
      batchCalls += 1
      if (batchCalls === 1) return reply.code(502).send('<html>bad gateway</html>')
      return reply.code(201).send((request.body as { messages: unknown[] }).messages)
    })
    app.get('/internal/history', async (_request, reply) => {
      historyCalls += 1
      if (historyCalls === 1) return reply.code(504).send(unavailable)
      return []
    })
  })
  const stored = await client.storeMessages('tenant-a', [makeInput(), makeInput()])
  t.equal(stored.length, 2)
  t.equal(batchCalls, 2)
  t.same(await client.history('tenant-a', { flow_id: FLOW_ID, session_id: 's' }), [])
  t.equal(historyCalls, 2)
})

t.test('a store that keeps answering 503 is unavailable after the retries', async (t) => {
  let calls = 0
  const { client } = await setup(
    t,
    (app) => {
      app.post('/internal/messages', async (_request, reply) => {
        calls += 1
        return reply.code(503).send(unavailable)
      })
    },
    { maxRetries: 3 },
  )

  const error = await rejection(client.storeMessage('tenant-a', makeInput()))

  t.equal(calls, 4, 'first attempt + maxRetries')
  t.ok(error instanceof MessageStoreUnavailableError)
  t.ok(error instanceof MessageStoreError, 'also a MessageStoreError')
  t.match(error, {
    statusCode: 503,
    code: CLIENT_MESSAGE_STORE_UNAVAILABLE,
    message: /^message-store unavailable: answered 503 MSGSTORE_UNAVAILABLE: database is down/,
  })
  const cause = (error as Error).cause
  t.ok(cause instanceof MessageStoreError)
  t.match(cause, { statusCode: 503, code: 'MSGSTORE_UNAVAILABLE', detail: 'database is down' })
})

t.test('a 5xx answer without an envelope keeps its status and text', async (t) => {
  const { client } = await setup(
    t,
    (app) => {
      app.get('/internal/history', async (_request, reply) =>
        reply.code(502).type('text/html').send('<html>bad gateway</html>'),
      )
    },
    { maxRetries: 0 },
  )
  const error = await rejection(client.history('tenant-a', { flow_id: FLOW_ID, session_id: 's' }))
  t.ok(error instanceof MessageStoreUnavailableError)
  t.match((error as Error).cause, {
    statusCode: 502,
    code: CLIENT_MESSAGE_STORE_HTTP_ERROR,
    detail: '<html>bad gateway</html>',
  })
})

t.test('a 422 is not retried and surfaces code and detail', async (t) => {
  let calls = 0
  const { client } = await setup(t, (app) => {
    app.post('/internal/messages', async (_request, reply) => {
      calls += 1
      return reply.code(422).send({ detail: 'text is too long', code: 'MSGSTORE_INVALID' })
    })
  })

  const error = await rejection(client.storeMessage('tenant-a', makeInput()))

  t.equal(calls, 1, 'not retried')
  t.ok(error instanceof MessageStoreError)
  t.notOk(error instanceof MessageStoreUnavailableError)
  t.match(error, {
    name: 'MessageStoreError',
    statusCode: 422,
    code: 'MSGSTORE_INVALID',
    detail: 'text is too long',
    message: 'message-store answered 422 MSGSTORE_INVALID: text is too long',
  })
})

t.test('a 500 is the store’s own error: not retried, not "unavailable"', async (t) => {
  let calls = 0
  const { client } = await setup(t, (app) => {
    app.post('/internal/messages/batch', async (_request, reply) => {
      calls += 1
      return reply.code(500).send({ detail: 'boom', code: 'MSGSTORE_INTERNAL' })
    })
  })
  const error = await rejection(client.storeMessages('tenant-a', [makeInput()]))
  t.equal(calls, 1)
  t.notOk(error instanceof MessageStoreUnavailableError)
  t.match(error, { statusCode: 500, code: 'MSGSTORE_INTERNAL', detail: 'boom' })
})

t.test('a store that never answers times out, with retries', async (t) => {
  let calls = 0
  const { client } = await setup(
    t,
    (app) => {
      app.get('/internal/history', () => {
        calls += 1
        return new Promise(() => {})
      })
    },
    { headersTimeout: 150, maxRetries: 1 },
  )

  const started = Date.now()
  const error = await rejection(client.history('tenant-a', { flow_id: FLOW_ID, session_id: 's' }))
  const elapsed = Date.now() - started

  t.ok(error instanceof MessageStoreUnavailableError)
  t.match(error, {
    statusCode: 503,
    code: CLIENT_MESSAGE_STORE_UNAVAILABLE,
    message: 'message-store unavailable: no response within 150 ms [GET /internal/history]',
  })
  t.match((error as Error).cause, { code: 'UND_ERR_HEADERS_TIMEOUT' })
  t.equal(calls, 2, 'the timed-out request was retried once')
  // undici checks headers/body timeouts on a coarse (~0.5–1 s) timer
  t.ok(elapsed >= 300 && elapsed < 4000, `gave up after ${elapsed} ms`)
})

t.test('a stalled response body times out', async (t) => {
  const { client } = await setup(
    t,
    (app) => {
      app.post('/internal/messages', (_request, reply) => {
        reply.hijack()
        reply.raw.writeHead(201, { 'content-type': 'application/json' })
        reply.raw.write('{"id":')
      })
    },
    { bodyTimeout: 150 },
  )
  const error = await rejection(client.storeMessage('tenant-a', makeInput()))
  t.ok(error instanceof MessageStoreUnavailableError)
  t.match(error, { message: /^message-store unavailable: response body stalled for 150 ms/ })
})

t.test('a closed port is unavailable', async (t) => {
  const port = await closedPort()
  const client = createMessageStoreClient({
    url: `http://127.0.0.1:${port}`,
    internalToken: TOKEN,
    retryMinDelay: 10,
  })
  t.teardown(() => client.close())

  const error = await rejection(client.storeMessage('tenant-a', makeInput()))

  t.ok(error instanceof MessageStoreUnavailableError)
  t.match(error, {
    statusCode: 503,
    code: CLIENT_MESSAGE_STORE_UNAVAILABLE,
    message: /^message-store unavailable: connect ECONNREFUSED 127\.0\.0\.1:\d+ \[POST \/internal\/messages\]$/,
  })
  t.match((error as Error).cause, { code: 'ECONNREFUSED' })
  await t.rejects(client.ready(), MessageStoreUnavailableError)
})

t.test('connection refused is retried until the store comes up', async (t) => {
  const port = await closedPort()
  const client = createMessageStoreClient({
    url: `http://127.0.0.1:${port}`,
    internalToken: TOKEN,
    maxRetries: 5,
    retryMinDelay: 50,
  })
  t.teardown(() => client.close())
  const input = makeInput()

  const pending = client.storeMessage('tenant-a', input)
  await new Promise((resolve) => setTimeout(resolve, 30))
  const store = await startFakeStore(undefined, port)
  t.teardown(() => store.close())

  t.equal((await pending).id, input.id)
  t.equal(store.seen.length, 1)
})

t.test('a connection reset is retried', async (t) => {
  let calls = 0
  const { client } = await setup(t, (app) => {
    app.post('/internal/messages', async (request, reply) => {
      calls += 1
      if (calls === 1) {
        reply.hijack()
        request.raw.socket.destroy()
        return
      }
      return reply.code(201).send(request.body)
    })
  })
  const input = makeInput()
  t.equal((await client.storeMessage('tenant-a', input)).id, input.id)
  t.equal(calls, 2)
})

t.test('the caller’s abort signal stops the call without an "unavailable" error', async (t) => {
  let calls = 0
  const { client } = await setup(t, (app) => {
    app.get('/internal/history', () => {
      calls += 1
      return new Promise(() => {})
    })
  })
  const controller = new AbortController()
  setTimeout(() => controller.abort(new Error('caller gave up')), 50)

  const error = await rejection(
    client.history('tenant-a', { flow_id: FLOW_ID, session_id: 's' }, { signal: controller.signal }),
  )

  t.notOk(error instanceof MessageStoreError)
  t.match(error, { message: 'caller gave up' })
  t.equal(calls, 1, 'not retried')
})

t.test('an invalid header value is a programming error, not "unavailable"', async (t) => {
  const { store, client } = await setup(t)
  const error = await rejection(client.storeMessage('tenant-a', makeInput(), { requestId: 'bad\r\nheader' }))
  t.notOk(error instanceof MessageStoreError)
  t.match(error, { code: 'UND_ERR_INVALID_ARG' })
  t.equal(store.seen.length, 0)
})

t.test('ready: 503 is unavailable and not retried', async (t) => {
  let calls = 0
  const { client } = await setup(t, (app) => {
    app.get('/ready', async (_request, reply) => {
      calls += 1
      return reply.code(503).send({ status: 'error', postgres: 'down', redis: 'up' })
    })
  })
  const error = await rejection(client.ready())
  t.equal(calls, 1)
  t.ok(error instanceof MessageStoreUnavailableError)
  t.equal((error as Error).message, 'message-store unavailable: not ready (postgres: down, redis: up) [GET /ready]')
})

t.test('ready: a 503 envelope and a 401 keep their detail', async (t) => {
  const { store, client } = await setup(t, (app) => {
    app.get('/ready', async (_request, reply) => reply.code(503).send(unavailable))
  })
  await t.rejects(client.ready(), {
    name: 'MessageStoreUnavailableError',
    message: /answered 503 MSGSTORE_UNAVAILABLE: database is down/,
  })

  const wrongToken = createMessageStoreClient({ url: store.url, internalToken: 'wrong' })
  t.teardown(() => wrongToken.close())
  await t.rejects(wrongToken.ready(), {
    name: 'MessageStoreError',
    statusCode: 401,
    code: 'MSGSTORE_UNAUTHORIZED',
  })
})
