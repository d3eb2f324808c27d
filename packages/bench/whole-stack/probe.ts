/**
 * A bench-only preload (`node --expose-gc --import <this file> …`): what whole-stack/streams.ts gives every
 * process it measures (the three services, the fake model), so that no service needs a debug endpoint.
 *
 * It records the event-loop delay (perf_hooks.monitorEventLoopDelay, sampled every RESOLUTION_MS, as
 * prom-client's `nodejs_eventloop_lag_*` does). On SIGWINCH (a signal no service handles, and whose default
 * action is to do nothing; SIGUSR2 would close them: close-with-grace listens to it) it prints one line, `PROBE_PREFIX` then JSON
 * (`ProbeReport` of probe-report.ts), to stdout:
 *   - the delay since the previous signal (or the start), the resolution taken off: what a timer due then
 *     waited on top of its own interval;
 *   - the memory right after a full GC (`gc()`, with --expose-gc; without it, memory as it is).
 * The delay is recorded again from 100 ms after the GC, so the GC's own pause is in no window.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { PROBE_PREFIX, type ProbeReport } from './probe-report.js'

const RESOLUTION_MS = 10

const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
delay.enable()
const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)

process.on('SIGWINCH', () => {
  const eld = {
    p50: ms(delay.percentile(50)),
    p99: ms(delay.percentile(99)),
    max: ms(delay.max),
    samples: delay.count,
  }
  delay.disable()
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const report: ProbeReport = { pid: process.pid, eld, memory: process.memoryUsage(), gc: gc !== undefined }
  process.stdout.write(`${PROBE_PREFIX}${JSON.stringify(report)}\n`)
  setTimeout(() => {
    delay.reset()
    delay.enable()
  }, 100).unref()
})
