// The pure parts of the slow-streams bench (whole-stack/stream-client.ts, probe-report.ts, report.ts) and one
// streamed run read by its client from a real HTTP server.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { PROBE_PREFIX, probeReport } from '../whole-stack/probe-report.js'
import { withOwnSection } from '../whole-stack/report.js'
import {
  EventSplitter,
  pacedReply,
  percentiles,
  replyOf,
  Samples,
  streamRun,
  tokenTimings,
} from '../whole-stack/stream-client.js'

const frame = (event: string, data: unknown) => `${JSON.stringify({ event, data })}\n\n`
const result = (text: string) => ({ outputs: [{ outputs: [{ results: { message: { id: 'm2', text } } }] }] })

t.test('the paced reply: as many words as tokens, the input first', async (t) => {
  t.equal(pacedReply('in-1', 4), 'in-1 t1 t2 t3')
  t.equal(pacedReply('in-1', 40).split(' ').length, 40)
})

t.test('events split however the bytes come; token events told without parsing', async (t) => {
  const stream =
    frame('add_message', { id: 'm1' }) + frame('token', { chunk: 'a', id: 'm2' }) + frame('end', result('a'))
  for (const size of [1, 2, 7, stream.length]) {
    const splitter = new EventSplitter()
    const events: ReturnType<EventSplitter['push']> = []
    for (let at = 0; at < stream.length; at += size) events.push(...splitter.push(stream.slice(at, at + size)))
    t.same(
      events.map((e) => (e === 'token' ? e : e.event)),
      ['add_message', 'token', 'end'],
      `pieces of ${size}`,
    )
    t.equal(splitter.rest, '')
  }
  const cut = new EventSplitter()
  cut.push('{"event":"end","da')
  t.equal(cut.rest, '{"event":"end","da', 'an event cut off stays pending')
  t.same(replyOf(result('hello')), { id: 'm2', text: 'hello' })
  t.equal(replyOf({ outputs: [] }), undefined)
})

t.test('percentiles by nearest rank; samples grow', async (t) => {
  t.same(percentiles([5, 1, 4, 2, 3], 0, 50, 100), [1, 3, 5])
  t.same(percentiles([], 50), [Number.NaN])
  const samples = new Samples()
  for (let i = 1000; i >= 1; i--) samples.add(i)
  t.equal(samples.length, 1000)
  t.same(samples.percentiles(50, 99, 100), [500, 990, 1000])
})

t.test('token timings: gaps against the interval and against the model, latency, the window', async (t) => {
  const runs = [
    { input: 'a', tokenAt: [1000, 1050, 1130, 1180] },
    { input: 'b', tokenAt: [1020, 1100] },
  ]
  // `a`'s model wrote its third word late (80 ms after the second), its fourth 20 ms after: the client saw that
  // third gap as it was written, and the fourth token 30 ms later than its gap (the stack's delay)
  const written = new Map([['a', [990, 1040, 1120, 1140]]])
  const all = tokenTimings(runs, written, { from: 0, to: 2000 }, 50)
  t.equal(all.tokens, 6)
  t.same([...all.addedGap.values()], [0, 30, 0, 30])
  t.same([...all.stackGap.values()], [0, 0, 30], 'only where the model times are known')
  t.same([...all.latency.values()], [10, 10, 10, 40])
  const window = tokenTimings(runs, written, { from: 1100, to: 1150 }, 50)
  t.equal(window.tokens, 2, 'tokens that arrived in the window')
  t.same([...window.addedGap.values()], [30, 30])
})

t.test('probe reports: the marked line only', async (t) => {
  const report = { pid: 1, eld: { p50: 0, p99: 1, max: 2, samples: 3 }, memory: { heapUsed: 5 }, gc: true }
  t.same(probeReport(`${PROBE_PREFIX}${JSON.stringify(report)}`), report)
  t.equal(probeReport('{"level":30}'), undefined)
  t.equal(probeReport(`${PROBE_PREFIX}{cut`), undefined)
})

t.test("a bench's section replaces its own previous one (notes kept), the others stay", async (t) => {
  const doc =
    '# Benchmarks\n\nintro\n\n## 2026-01-02 — slow streams (10:00 UTC)\n\nold\n\n### Notes\n\nby hand\n\n## 2026-01-01 — gateway (09:00 UTC)\n\ng\n'
  const out = withOwnSection(doc, '## 2026-01-03 — slow streams (11:00 UTC)\n\nnew\n', 'x', /^## .* — slow streams \(/)
  t.equal(
    out,
    '# Benchmarks\n\nintro\n\n## 2026-01-03 — slow streams (11:00 UTC)\n\nnew\n\n### Notes\n\nby hand\n\n## 2026-01-01 — gateway (09:00 UTC)\n\ng\n',
  )
})

t.test('a streamed run read by the client: tokens, the end event, what fails', async (t) => {
  const answers = new Map<string, string>([
    [
      'ok',
      frame('add_message', { id: 'm1' }) +
        frame('token', { chunk: 'a ' }) +
        frame('token', { chunk: 'b' }) +
        frame('end', { result: result('a b') }),
    ],
    ['error', frame('token', { chunk: 'a' }) + frame('error', { error: 'boom' })],
    ['after', frame('end', { result: result('x') }) + frame('token', { chunk: 'late' })],
    ['cut', frame('token', { chunk: 'a' })],
  ])
  const server = createServer(async (req, res) => {
    let body = ''
    for await (const chunk of req) body += chunk
    const { input_value: input } = JSON.parse(body) as { input_value: string }
    if (input === 'refused') return void res.writeHead(503).end('{"detail":"busy"}')
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(answers.get(input))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { default: http } = await import('node:http')
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const run = (input: string) =>
    streamRun({
      agent,
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      path: '/api/v1/run/f?stream=true',
      headers: {},
      session: input,
      input,
      timeoutMs: 5_000,
    })
  const ok = await run('ok')
  t.match(ok, { ended: true, tokens: 2, reply: { id: 'm2', text: 'a b' }, status: 200 })
  t.equal(ok.tokenAt.length, 2)
  t.ok(ok.firstMessageMs !== undefined && ok.firstTokenMs !== undefined)
  t.match(await run('error'), { ended: false, failure: /^error event: \{"error":"boom"\}/ })
  t.match(await run('after'), { ended: false, failure: 'token after end' })
  t.match(await run('cut'), { ended: false, failure: 'stream ended after token' })
  t.match(await run('refused'), { ended: false, status: 503, failure: /^503 \{"detail":"busy"\}/ })
})
