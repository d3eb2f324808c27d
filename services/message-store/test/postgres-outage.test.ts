import { randomUUID } from 'node:crypto'
import { connect, createServer, type Server, type Socket } from 'node:net'
import t from 'tap'
import { backends, buildTestApp, internalHeaders, messageInput, storageKind } from './helpers/app.js'

t.comment(`storage: ${storageKind}`)

/** A TCP proxy to Postgres that the test can cut, as a network failure would. */
async function startProxy(target: URL): Promise<{ url: string; cut: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  const url = new URL(target)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.toString(),
    cut: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

t.test('with the database gone, writes and reads answer 503 and nothing is acknowledged', async (t) => {
  let cut: () => Promise<void>
  let app: Awaited<ReturnType<typeof buildTestApp>>
  const lines: { level: number; msg: string; reqId?: string; err?: unknown }[] = []
  const server = { logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } }
  if (storageKind === 'postgres') {
    const proxy = await startProxy(new URL(backends.postgresUrl as string))
    app = await buildTestApp(t, { cache: 'none', env: { DATABASE_URL: proxy.url }, server })
    cut = proxy.cut
  } else {
    app = await buildTestApp(t, { cache: 'none', server })
    cut = () => app.db.close()
  }
  const flow_id = randomUUID()
  const before = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders(),
    payload: messageInput({ flow_id, session_id: 's' }),
  })
  t.equal(before.statusCode, 201, 'stored while the database is up')

  await cut()

  const write = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: { ...internalHeaders(), 'x-request-id': 'outage-write' },
    payload: messageInput({ flow_id, session_id: 's' }),
  })
  t.equal(write.statusCode, 503, 'a write the database did not take is not acknowledged')
  t.equal(write.json().code, 'MSGSTORE_UNAVAILABLE')
  t.match(write.json().detail, /Database unavailable/)

  const read = await app.inject({
    method: 'GET',
    url: '/internal/history',
    headers: { ...internalHeaders(), 'x-request-id': 'outage-read' },
    query: { flow_id, session_id: 's' },
  })
  t.equal(read.statusCode, 503)

  // each 503 logged at error, with its cause, under the caller's request ID
  for (const reqId of ['outage-write', 'outage-read']) {
    t.match(
      lines.filter((line) => line.reqId === reqId && line.level === 50),
      [{ msg: 'request failed', err: { message: String } }],
      reqId,
    )
  }

  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().postgres, 'down')
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'the process itself is alive')
})
