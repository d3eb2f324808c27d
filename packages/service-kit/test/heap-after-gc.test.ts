import { constants, PerformanceObserver } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify from 'fastify'
import type { Gauge } from 'prom-client'
import t from 'tap'
import { metrics } from '../src/index.js'

// tap runs the tests without --expose-gc: the flag, then a new context, give a gc function.
setFlagsFromString('--expose-gc')
// Node 20's V8 reads any argument as "minor" (gc(true), gc({ type: 'major' }) alike): no argument for a major GC.
const gc = runInNewContext('gc') as (options?: { type: 'minor' }) => void

const NAME = 'nodejs_heap_used_after_major_gc_bytes'
const MiB = 2 ** 20
const KIND = { major: constants.NODE_PERFORMANCE_GC_MAJOR, minor: constants.NODE_PERFORMANCE_GC_MINOR }
const kindOf = (entry: object) => (entry as { detail?: { kind?: number } }).detail?.kind

/** Major GCs seen since the file started (any cause), to tell when one happened behind a test's back. */
let majors = 0
const counter = new PerformanceObserver((list) => {
  majors += list.getEntries().filter((e) => kindOf(e) === KIND.major).length
})
counter.observe({ entryTypes: ['gc'] })
t.teardown(() => counter.disconnect())

/**
 * A forced GC of that type, resolved once its `gc` entry has been handed to every observer. The timer also keeps
 * the event loop alive meanwhile: Node's dispatch of `gc` entries does not.
 */
async function collect(type: 'major' | 'minor' = 'major') {
  let timer: NodeJS.Timeout | undefined
  const dispatched = new Promise<void>((resolve, reject) => {
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((e) => kindOf(e) === KIND[type])) {
        observer.disconnect()
        resolve()
      }
    })
    observer.observe({ entryTypes: ['gc'] })
    timer = setTimeout(() => {
      observer.disconnect()
      reject(new Error(`no ${type} gc entry within 5 s`))
    }, 5000)
  })
  if (type === 'minor') gc({ type })
  else gc()
  await dispatched.finally(() => clearTimeout(timer))
  await new Promise((resolve) => setImmediate(resolve))
}

async function build(service: string) {
  const app = Fastify({ logger: false })
  await app.register(metrics, { service })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** The gauge's sample for that service in the app's /metrics, or undefined when it has none. */
async function heapAfterGc(app: Awaited<ReturnType<typeof build>>, service: string) {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  const value = new RegExp(`^${NAME}\\{service="${service}"\\} (\\S+)$`, 'm').exec(res.body)?.[1]
  return value === undefined ? undefined : Number(value)
}

t.test('the heap after the last major GC: set by each major GC, not by minor ones', async (t) => {
  const majorsBeforeBuild = majors
  const app = await build('kit-gc')
  const none = await heapAfterGc(app, 'kit-gc')
  // Every `gc` entry dispatched to the app's observer also reaches the counter, created before it.
  if (majors === majorsBeforeBuild) t.equal(none, undefined, 'no sample before the first major GC')
  else t.pass(`a major GC happened since the app started (${majors - majorsBeforeBuild}): not checked`)

  await collect()
  const now = getHeapStatistics().used_heap_size
  const first = await heapAfterGc(app, 'kit-gc')
  t.ok(first !== undefined && first > 0, `a positive sample with the service label (${first})`)
  t.ok(Math.abs((first ?? 0) - now) < 4 * MiB, `≈ the heap used just after the GC (${first} vs ${now})`)
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(res.body, `# HELP ${NAME} V8 heap used right after the last major (mark-sweep-compact) garbage collection`)
  t.match(res.body, `# TYPE ${NAME} gauge`)

  // 32 MiB kept on the V8 heap (an array of small integers: 8 bytes each), then dropped
  let ballast: number[] | undefined = new Array(4 * MiB).fill(1)
  await collect()
  const held = (await heapAfterGc(app, 'kit-gc')) ?? Number.NaN
  t.ok(held - (first ?? 0) > 30 * MiB, `+32 MiB retained shows (${first} → ${held})`)
  t.equal(ballast.length, 4 * MiB)
  ballast = undefined
  await collect()
  const dropped = (await heapAfterGc(app, 'kit-gc')) ?? Number.NaN
  t.ok(held - dropped > 30 * MiB, `and goes when released (${held} → ${dropped})`)

  // Minor GCs (with 2 MiB more retained, so that the heap used differs) leave the gauge as it was.
  const majorsBefore = majors
  const kept = Array.from({ length: 20_000 }, (_, i) => ({ i, text: `object ${i}` }))
  await collect('minor')
  await collect('minor')
  t.equal(kept.length, 20_000)
  t.not(getHeapStatistics().used_heap_size, dropped, 'the heap used has moved')
  if (majors === majorsBefore) t.equal(await heapAfterGc(app, 'kit-gc'), dropped, 'minor GCs do not set it')
  else t.pass(`a major GC happened meanwhile (${majors - majorsBefore}): the minor-GC check does not apply`)
})

t.test("one observer per app: closing an app stops its own, not another app's", async (t) => {
  const a = await build('kit-a')
  const b = await build('kit-b')
  await collect()
  const gaugeA = a.metricsRegistry.getSingleMetric(NAME) as Gauge | undefined
  const before = (await gaugeA?.get())?.values[0]?.value
  t.ok(before !== undefined && before > 0, `app a has a sample (${before})`)
  t.ok(((await heapAfterGc(b, 'kit-b')) ?? 0) > 0, 'so does app b')

  await a.close()
  t.same(a.metricsRegistry.getMetricsAsArray(), [], "a's registry is cleared")
  let ballast: number[] | undefined = new Array(4 * MiB).fill(1)
  await collect()
  t.equal((await gaugeA?.get())?.values[0]?.value, before, 'a major GC after close leaves app a untouched')
  t.same(a.metricsRegistry.getMetricsAsArray(), [], 'and registers nothing again')
  const afterB = (await heapAfterGc(b, 'kit-b')) ?? Number.NaN
  t.ok(afterB - (before ?? 0) > 30 * MiB, `app b still follows major GCs (${before} → ${afterB})`)
  t.equal(ballast.length, 4 * MiB)
  ballast = undefined
})
