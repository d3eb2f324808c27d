import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, store, type TestApp } from './helpers/app.js'

t.comment(`cache: ${cacheKind}`)

/** The sum of the samples of `name` whose labels include `labels`, in Prometheus text; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3])
  }
  return sum
}

// Two apps for the whole file (PGlite boots slowly): one with the cache, one without.
const app = await buildTestApp(t)
const off = await buildTestApp(t, { cache: 'none' })

async function scrape(app: TestApp): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body
}

t.test('/metrics: Prometheus text without internal headers, named message-store', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(sample(res.body, 'history_cache_hit_ratio'), 0, '0 before the first read')
  for (const name of ['messages_stored_total', 'history_cache_hits_total', 'history_cache_misses_total']) {
    t.match(res.body, new RegExp(`# TYPE ${name} counter`))
    t.equal(sample(res.body, name, { service: 'message-store' }), 0, `${name} starts at 0`)
  }
  t.match(res.body, /# TYPE history_cache_hit_ratio gauge/)
  t.match(res.body, /nodejs_heap_size_used_bytes\{service="message-store"\}/)
})

t.test('messages_stored_total counts the messages persisted, not idempotent repeats', async (t) => {
  const flow_id = randomUUID()
  const before = await scrape(app)
  const batch = [1, 2, 3].map((n) => messageInput({ flow_id, session_id: 's-1', text: `m${n}` }))
  await store(app, 'tenant-a', batch)
  await store(app, 'tenant-a', batch) // replayed: nothing new
  const single = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: internalHeaders(),
    payload: messageInput({ flow_id, session_id: 's-2' }),
  })
  t.equal(single.statusCode, 201)
  const after = await scrape(app)
  const moved = (name: string, labels: Record<string, string> = {}) =>
    sample(after, name, labels) - sample(before, name, labels)
  t.equal(moved('messages_stored_total'), 4)
  const route = { method: 'POST', route: '/internal/messages/batch', status_code: '201' }
  t.equal(moved('http_request_duration_seconds_count', route), 2)
  t.equal(sample(await scrape(off), 'messages_stored_total'), 0, 'another app in the process counts its own')
})

t.test('history cache hits, misses and hit ratio move with reads', async (t) => {
  const flow_id = randomUUID()
  const before = await scrape(app)
  t.equal(sample(before, 'history_cache_hits_total') + sample(before, 'history_cache_misses_total'), 0, 'no read yet')
  // a session never written: the database answers (its version lookup finds no session), nothing is cached
  await history(app, 'tenant-a', { flow_id, session_id: 'cold', limit: 10 })
  await history(app, 'tenant-a', { flow_id, session_id: 'cold', limit: 10 })
  const after = await scrape(app)
  t.equal(sample(after, 'history_cache_misses_total') - sample(before, 'history_cache_misses_total'), 2)
  t.equal(sample(after, 'history_cache_hits_total') - sample(before, 'history_cache_hits_total'), 0)
  t.equal(sample(after, 'history_cache_hit_ratio'), 0)
  const route = { method: 'GET', route: '/internal/history', status_code: '200' }
  t.equal(sample(after, 'http_request_duration_seconds_count', route), 2)
  t.notMatch(after, /cold/, 'no session ID in any label')

  // a history written through the store is appended to the cache: both reads hit
  await store(app, 'tenant-a', [messageInput({ flow_id, session_id: 'warm' })])
  await history(app, 'tenant-a', { flow_id, session_id: 'warm', limit: 10 })
  await history(app, 'tenant-a', { flow_id, session_id: 'warm', limit: 10 })
  const last = await scrape(app)
  t.equal(sample(last, 'history_cache_hits_total'), 2)
  t.equal(sample(last, 'history_cache_misses_total'), 2)
  t.equal(sample(last, 'history_cache_hit_ratio'), 0.5)
})

t.test('with the cache disabled every read is a miss', async (t) => {
  await history(off, 'tenant-a', { flow_id: randomUUID(), session_id: 's', limit: 10 })
  await history(off, 'tenant-a', { flow_id: randomUUID(), session_id: 's', limit: 10 })
  const body = await scrape(off)
  t.equal(sample(body, 'history_cache_misses_total'), 2)
  t.equal(sample(body, 'history_cache_hits_total'), 0)
  t.equal(sample(body, 'history_cache_hit_ratio'), 0)
})
