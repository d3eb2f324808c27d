import t from 'tap'
import {
  combine,
  lossVerdict,
  microsPerRequest,
  type Row,
  resultsTable,
  throughputLoss,
  withGatewaySection,
} from '../whole-stack/report.js'

t.test('the gateway cost is the share of direct throughput lost, checked against 25%', async (t) => {
  t.equal(throughputLoss(1000, 800), 0.2)
  t.equal(throughputLoss(1000, 1100), 0, 'faster through the gateway (noise) is no loss, not a gain')
  t.ok(Number.isNaN(throughputLoss(0, 10)), 'nothing to compare with')

  t.same(lossVerdict(0.25), { pass: true, detail: '25% fewer req/s than direct (target ≤ 25%)' })
  const missed = lossVerdict(0.33)
  t.equal(missed.pass, false)
  t.match(missed.detail, /33% fewer req\/s than direct, 8 points over the 25% target/)
  t.equal(lossVerdict(Number.NaN).pass, false)
})

t.test('rounds are combined into means; errors add up', async (t) => {
  t.same(
    combine([
      { reqs: 100, p50: 10, p99: 30, errors: 1 },
      { reqs: 300, p50: 20, p99: 50, errors: 2 },
    ]),
    { reqs: 200, p50: 15, p99: 40, errors: 3 },
  )
  t.throws(() => combine([]))
  t.equal(microsPerRequest(0.5, 1000), 500)
  t.ok(Number.isNaN(microsPerRequest(0.5, 0)))
})

t.test('the table shows ratios and the verdict only where they apply', async (t) => {
  const rows: Row[] = [
    { id: 'direct', scenario: 'direct', reqs: 1000, p50: 10, p99: 20, errors: 0, vsBaseline: 0.1 },
    {
      id: 'gw',
      scenario: 'gateway',
      reqs: 700,
      p50: 12.5,
      p99: 19,
      errors: 3,
      vsBaseline: 0.07,
      loss: 0.3,
      verdict: lossVerdict(0.3),
      addedP50: 2.5,
      addedP99: -1,
    },
  ]
  const [header, align, direct, gw] = resultsTable(rows)
  t.match(header, /^\| scenario \| req\/s \|/)
  t.equal(align?.split('|').length, header?.split('|').length, 'one alignment cell per column')
  t.equal(direct, '| direct | 1,000 | 10.0 | 20.0 | 10% | — | — | — |')
  t.equal(gw, '| gateway | 700 | 12.5 | 19.0 | 7% | −30% | +2.5 / −1.0 | ✘ (3 errors) |')
})

t.test('docs: the gateway section replaces the previous one and keeps every other section as it was', async (t) => {
  const intro = '# Benchmarks\n\nintro\n'
  const store1 = '## 2026-11-27 — message-store (13:30 UTC)\n\n| a |\n\n### What it shows\n\n- x\n\n'
  const store0 = '## 2026-11-26 — message-store (12:46 UTC)\n\nold\n'
  const oldGateway = '## 2026-11-26 — gateway (10:00 UTC)\n\nold gateway\n\n### What it shows\n\n- y\n'
  const doc = `# Benchmarks\n\nkept intro\n\n${store1}\n${oldGateway}\n${store0}`
  const section = '## 2026-11-27 — gateway (15:00 UTC)\n\nnew\n'
  const out = withGatewaySection(doc, section, intro)
  t.equal(out, `# Benchmarks\n\nkept intro\n\n${section}\n${store1}\n${store0}`)
  t.equal(withGatewaySection(out, section, intro), out, 'running again changes nothing')
  t.equal(withGatewaySection('', section, intro), `${intro}\n${section}`, 'a new file gets the intro')
})

t.test('docs: hand-written notes of the previous gateway section are carried over', async (t) => {
  const notes = '### Notes (by hand)\n\n- the hop costs the most\n'
  const doc = `# B\n\n## 2026-11-26 — gateway (10:00 UTC)\n\nold\n\n${notes}\n## 2026-11-26 — message-store (9:00 UTC)\n\nm\n`
  const section = '## 2026-11-27 — gateway (15:00 UTC)\n\n### What it shows\n\n- new\n'
  t.equal(
    withGatewaySection(doc, section, '# B\n'),
    `# B\n\n${section}\n${notes}\n## 2026-11-26 — message-store (9:00 UTC)\n\nm\n`,
  )
})
