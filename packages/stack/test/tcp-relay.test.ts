// startTcpRelay: bytes pass both ways; frozen, nothing passes and the connections stay open; thawed, what was
// held arrives in order; cut, the connections are reset and new ones too until restored; delayed, every chunk
// arrives late; closed by the target, the client sees the end.
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { sleep, startTcpRelay, waitFor } from '../src/index.js'

/** A server that answers every chunk with `echo:` and the chunk; `received` is all it got. */
async function echoServer(t: Test) {
  const sockets = new Set<Socket>()
  const state = { received: '' }
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.on('data', (chunk) => {
      state.received += chunk.toString()
      socket.write(`echo:${chunk}`)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, sockets, state }
}

/** A client of the relay that keeps what it got and how it ended. */
async function client(port: number) {
  const socket = connect({ host: '127.0.0.1', port })
  const state = { got: '', closed: false, error: undefined as string | undefined, ended: false }
  socket.on('data', (chunk) => {
    state.got += chunk.toString()
  })
  socket.on('end', () => {
    state.ended = true
  })
  socket.on('error', (error: NodeJS.ErrnoException) => {
    state.error = error.code
  })
  socket.on('close', () => {
    state.closed = true
  })
  await once(socket, 'connect')
  return { socket, state }
}

/** An echo server, a relay to it, and a client of the relay. */
async function relayed(t: Test) {
  const target = await echoServer(t)
  const relay = await startTcpRelay(target.port, { t })
  return { target, relay, c: await client(relay.port) }
}

/** The code of the error a new connection to `port` ends with. */
async function connectError(port: number): Promise<string | undefined> {
  const socket = connect({ host: '127.0.0.1', port })
  const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException]
  return error.code
}

t.test('bytes pass both ways; freeze holds them with the connection open, thaw lets them through', async (t) => {
  const { target, relay, c } = await relayed(t)
  c.socket.write('one')
  await waitFor(() => c.state.got === 'echo:one', 'the echo through the relay', 5_000)
  t.equal(relay.connections, 1)

  relay.freeze()
  c.socket.write('two')
  // nothing may pass while frozen: a bounded look (the unfrozen round trip above took a millisecond or so)
  await sleep(300)
  t.equal(target.state.received, 'one', 'the target got nothing while frozen')
  t.equal(c.state.got, 'echo:one')
  t.notOk(c.state.closed, 'the connection stays open')
  t.equal(target.sockets.size, 1)

  // a connection made while frozen is accepted, and nothing passes on it either
  const d = await client(relay.port)
  d.socket.write('three')
  await sleep(100)
  t.equal(target.state.received, 'one')

  relay.thaw()
  await waitFor(() => c.state.got === 'echo:oneecho:two', 'the held bytes after the thaw', 5_000)
  await waitFor(() => d.state.got === 'echo:three', 'the held bytes of the new connection', 5_000)
  t.equal(target.state.received.length, 'onetwothree'.length)
  c.socket.destroy()
  d.socket.destroy()
})

t.test('cut resets every connection and every new one, until restore', async (t) => {
  const { target, relay, c } = await relayed(t)
  c.socket.write('one')
  await waitFor(() => c.state.got === 'echo:one', 'the echo', 5_000)

  relay.cut()
  await waitFor(() => c.state.closed, 'the client connection to be closed', 5_000)
  t.equal(c.state.error, 'ECONNRESET', 'reset, as a broken link')
  await waitFor(() => target.sockets.size === 0, 'the target connection to be closed', 5_000)
  t.equal(relay.connections, 0)

  t.equal(await connectError(relay.port), 'ECONNRESET', 'a new connection is reset at once')

  relay.restore()
  const d = await client(relay.port)
  d.socket.write('again')
  await waitFor(() => d.state.got === 'echo:again', 'the echo after restore', 5_000)
  d.socket.destroy()
})

t.test('delay adds latency to every chunk each way, in order', async (t) => {
  const { relay, c } = await relayed(t)
  relay.delay(150)
  const started = Date.now()
  c.socket.write('a')
  await sleep(20)
  c.socket.write('b')
  await waitFor(() => c.state.got === 'echo:a', 'the first delayed echo', 5_000, 2)
  t.ok(Date.now() - started >= 300, `round trip ≥ 2 × 150 ms (${Date.now() - started} ms)`)
  await waitFor(() => c.state.got === 'echo:aecho:b', 'the second delayed echo', 5_000, 2)

  relay.delay(0)
  const again = Date.now()
  c.socket.write('c')
  await waitFor(() => c.state.got.endsWith('echo:c'), 'the echo without delay', 5_000, 2)
  t.ok(Date.now() - again < 150, `no delay once set back to 0 (${Date.now() - again} ms)`)
  c.socket.destroy()
})

t.test('the target closing ends the client; a target that is down resets it; stop closes everything', async (t) => {
  const { target, relay, c } = await relayed(t)
  c.socket.write('x')
  await waitFor(() => target.sockets.size === 1, 'the target connection', 5_000)
  for (const socket of target.sockets) socket.end()
  await waitFor(() => c.state.ended, 'the end to reach the client', 5_000)
  t.equal(c.state.got, 'echo:x')

  const down = await startTcpRelay(1, { t })
  const d = await client(down.port)
  await waitFor(() => d.state.closed, 'the client of a relay to nothing to be closed', 5_000)
  t.equal(d.state.error, 'ECONNRESET')

  const e = await client(relay.port)
  await waitFor(() => relay.connections === 1, 'the connection', 5_000)
  await relay.stop()
  await waitFor(() => e.state.closed, 'the client to be closed by stop', 5_000)
  t.equal(await connectError(relay.port), 'ECONNREFUSED', 'nothing listens after stop')
})
