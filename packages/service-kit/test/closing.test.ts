// A request that reaches a service while it closes (SIGTERM: close-with-grace calls app.close()) arrives on
// a keep-alive connection that was busy when closing began. It is refused with a 503 in the error envelope
// and the connection is closed; the request in flight finishes normally.
import { connect } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import { commonErrors, errorEnvelope, serviceServerOptions } from '../src/index.js'

const Errors = commonErrors('KIT')

t.test('a request arriving while the server closes: 503 in the envelope, the one in flight completes', async (t) => {
  const app = Fastify({ logger: false, ...serviceServerOptions(Errors) })
  await app.register(errorEnvelope, { prefix: 'KIT', errors: Errors, bodyLimit: 1024 })
  let release = () => {}
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  let started = () => {}
  const slowStarted = new Promise<void>((resolve) => {
    started = resolve
  })
  app.get('/slow', async () => {
    started()
    await gate
    return { slow: 'done' }
  })
  app.get('/other', async () => ({ other: 'served' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  t.teardown(() => {
    release()
    return app.close()
  })

  const socket = connect({ host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', (chunk) => {
    received += chunk.toString('latin1')
  })
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write('GET /slow HTTP/1.1\r\nHost: kit\r\n\r\n')
  await slowStarted
  const closed = app.close()
  // The second request of the same keep-alive connection, sent once closing has begun.
  socket.write('GET /other HTTP/1.1\r\nHost: kit\r\n\r\n')
  await new Promise((resolve) => setTimeout(resolve, 50))
  release()
  await ended
  await closed

  const responses = received.split(/(?=HTTP\/1\.1 )/)
  t.equal(responses.length, 2, `two responses:\n${received}`)
  t.match(responses[0], /^HTTP\/1\.1 200 /, 'the request in flight completes')
  t.match(responses[0], /\{"slow":"done"\}/)
  t.match(responses[1], /^HTTP\/1\.1 503 /, 'the late request is refused with 503')
  t.match(responses[1], /connection: close/i, 'and its connection closed')
  const body = JSON.parse(responses[1]?.slice((responses[1]?.indexOf('\r\n\r\n') ?? 0) + 4) ?? '')
  t.same(
    body,
    { detail: 'The service is shutting down; try again shortly', code: 'KIT_SHUTTING_DOWN' },
    'in the error envelope',
  )
})
