import { EventEmitter } from 'node:events'
import t, { type Test } from 'tap'
import { parseBaseUrls, type RotationEvent, startUpstreamRotation } from '../src/index.js'

t.test('parseBaseUrls: one URL, a comma list, and clear errors', async (t) => {
  t.same(parseBaseUrls('http://127.0.0.1:7862'), ['http://127.0.0.1:7862'])
  t.same(parseBaseUrls(' http://a:1/ , https://b:2 '), ['http://a:1', 'https://b:2'])
  t.same(parseBaseUrls('http://a:1/store/,http://b:2/store'), ['http://a:1/store', 'http://b:2/store'])
  t.throws(() => parseBaseUrls('http://a:1,nope', 'RUN_SERVICE_URL'), {
    message: 'RUN_SERVICE_URL: entry 2 of 2 ("nope") is not a URL',
  })
  t.throws(() => parseBaseUrls('ftp://a:1', 'X'), { message: 'X: entry 1 of 1 ("ftp://a:1") is not an http(s) URL' })
  t.throws(() => parseBaseUrls('http://a:1,', 'X'), { message: 'X: entry 2 of 2 ("") is not a URL' })
  t.throws(() => parseBaseUrls(' , ', 'X'), { message: 'X: no URL given' })
  t.throws(() => parseBaseUrls('http://a:1/x,http://b:1/y', 'X'), { message: /same path/ })
  t.throws(() => parseBaseUrls('http://a:1,http://a:1/', 'X'), { message: 'X: http://a:1 is listed twice' })
})

/** A stand-in for BalancedPool: records what the rotation does, emits what undici would. */
class FakePool extends EventEmitter {
  upstreams: string[] = []
  addUpstream(origin: string) {
    if (!this.upstreams.includes(origin)) this.upstreams.push(origin)
  }
  removeUpstream(origin: string) {
    this.upstreams = this.upstreams.filter((one) => one !== origin)
  }
}

const A = 'http://127.0.0.1:1001'
const B = 'http://127.0.0.1:1002'

function setup(t: Test) {
  const pool = new FakePool()
  pool.upstreams = [A, B]
  const ready = new Map([
    [A, true],
    [B, true],
  ])
  const events: RotationEvent[] = []
  const rotation = startUpstreamRotation({
    origins: [A, B],
    pool,
    intervalMs: 60_000,
    probe: async (origin) => ready.get(origin) ?? false,
    onChange: (event) => events.push(event),
  })
  t.teardown(() => rotation.close())
  return { pool, ready, events, rotation }
}

t.test('rotation: a connection error takes an instance out at once; /ready 200 puts it back', async (t) => {
  const { pool, ready, events, rotation } = setup(t)
  pool.emit('connectionError', new URL(A), [], Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))
  t.same(rotation.inRotation(), [B])
  t.same(pool.upstreams, [B])
  t.same(events, [{ type: 'removed', origin: A, reason: 'connection failed: ECONNREFUSED' }])

  ready.set(A, false)
  await rotation.pollNow()
  t.same(rotation.inRotation(), [B], 'not ready yet: stays out')
  ready.set(A, true)
  await rotation.pollNow()
  t.same(rotation.inRotation(), [A, B])
  t.same(pool.upstreams, [B, A])
  t.same(events.at(-1), { type: 'added', origin: A })
})

t.test('rotation: a lost connection counts, a normal close does not; the last one is never removed', async (t) => {
  const { pool, ready, events, rotation } = setup(t)
  pool.emit('disconnect', new URL(B), [], Object.assign(new Error('closed'), { code: 'UND_ERR_INFO' }))
  t.same(rotation.inRotation(), [A, B], 'an idle close is no failure')
  pool.emit('disconnect', new URL(B), [], Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))
  t.same(rotation.inRotation(), [A])

  ready.set(A, false)
  ready.set(B, false)
  await rotation.pollNow()
  t.same(rotation.inRotation(), [A], 'every instance down: the last one stays')
  t.same(pool.upstreams, [A])
  t.match(events.at(-1), { type: 'all-down', origin: A })

  ready.set(B, true)
  await rotation.pollNow()
  t.same(rotation.inRotation(), [B], 'B back, A (still down) leaves')
  t.same(pool.upstreams, [B])
})

t.test('rotation: polls on its interval; close stops the polls and the listeners', async (t) => {
  const pool = new FakePool()
  pool.upstreams = [A, B]
  // the rotation's timer does not keep a process alive: this one does, meanwhile
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  let polls = 0
  let polled!: () => void
  const twice = new Promise<void>((resolve) => {
    polled = resolve
  })
  const rotation = startUpstreamRotation({
    origins: [A, B],
    pool,
    intervalMs: 20,
    probe: async () => {
      polls += 1
      if (polls === 4) polled()
      return true
    },
  })
  await twice
  rotation.close()
  const after = polls
  t.equal(pool.listenerCount('connectionError'), 0)
  t.equal(pool.listenerCount('disconnect'), 0)
  pool.emit('connectionError', new URL(A), [], new Error('x'))
  t.same(rotation.inRotation(), [A, B], 'closed: events are ignored')
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(polls, after, 'no poll after close')
})
