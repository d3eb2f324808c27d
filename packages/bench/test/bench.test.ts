import t from 'tap'
import {
  cpuDelta,
  cpuSnapshot,
  measured,
  pct,
  positiveInt,
  sectionHeading,
  sectionText,
  verdictFindings,
  writeDocsWanted,
} from '../src/index.js'

t.test('settings: positive numbers, else the default; docs only for runs of 10 s unless told', async (t) => {
  t.equal(positiveInt('5', 10), 5)
  t.equal(positiveInt('0', 10), 10)
  t.equal(positiveInt('x', 10), 10)
  t.equal(positiveInt(undefined, 10), 10)
  t.equal(writeDocsWanted(undefined, 10), true)
  t.equal(writeDocsWanted(undefined, 2), false)
  t.equal(writeDocsWanted('1', 2), true)
  t.equal(writeDocsWanted('0', 10), false)
})

t.test('an autocannon result: 2xx per second, percentiles, every kind of failure', async (t) => {
  const result = { '2xx': 900, duration: 3, latency: { p50: 4, p99: 12 }, non2xx: 2, errors: 1, timeouts: 3 }
  t.same(measured(result as never), { reqs: 300, p50: 4, p99: 12, errors: 6 })
})

t.test('report lines', async (t) => {
  t.equal(pct(0.256), '26%')
  t.equal(sectionHeading(new Date('2024-05-06T07:08:09Z'), 'gateway'), '## 2024-05-06 — gateway (07:08 UTC)')
  t.same(
    verdictFindings([
      { scenario: 'a', verdict: { pass: true, detail: 'fine' } },
      { scenario: 'b' },
      { scenario: 'c', verdict: { pass: false, detail: 'slow' } },
    ]),
    ['- a: met (fine).', '- c: **missed** (slow).'],
  )
  t.equal(sectionText(['x', '', '', 'y', '']), 'x\n\ny\n')
})

t.test('CPU accounting from /proc (Linux, as the benchmarks)', async (t) => {
  const a = await cpuSnapshot()
  await new Promise((r) => setTimeout(r, 50))
  const b = await cpuSnapshot()
  if (!a || !b) return t.fail('no snapshot')
  t.ok(b.procs.has(process.pid))
  const { used, toCores } = cpuDelta(a, b)
  t.ok(used((pid) => pid === process.pid) >= 0)
  t.equal(
    used(() => false),
    0,
  )
  t.ok(Number.isFinite(toCores(1)) || b.total === a.total)
})

t.test('CPU accounting counts processes that ran in both snapshots and those started since', async (t) => {
  const a = { busy: 100, total: 400, procs: new Map([[1, ['node', 50, 5] as [string, number, number]]]) }
  const b = {
    busy: 300,
    total: 800,
    procs: new Map([
      [1, ['node', 80, 6] as [string, number, number]],
      [2, ['postgres', 40, 4] as [string, number, number]],
    ]),
  }
  const { used, toCores } = cpuDelta(a, b)
  t.equal(
    used((pid) => pid === 1),
    30,
    'ticks since the first snapshot',
  )
  t.equal(
    used((_, comm) => comm === 'postgres'),
    40,
    'a process started since: all its ticks',
  )
  t.equal(
    used(() => true),
    70,
  )
  t.ok(toCores(400) > 0)
})
