import { Counter, Histogram } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { RetentionSweeper, SweepBusyError } from '../../domain/retention-sweeper.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Deletes sessions idle past their retention (on a timer, and on POST /api/v1/monitor/retention/sweep). */
    retentionSweeper: RetentionSweeper
  }
}

/** How long a sweep's lease lasts without a batch renewing it: an instance that died mid-sweep frees it then. */
const LEASE_SECONDS = 60

/**
 * The retention sweeper: one sweep of every tenant every RETENTION_SWEEP_INTERVAL_SECONDS (the next one is timed
 * from the end of the last, so they never overlap; skipped when another instance is sweeping), stopped with the
 * app. Metrics: `retention_sweeps_total`, `retention_sweeps_skipped_total`, `retention_sessions_deleted_total`,
 * `retention_messages_deleted_total`, `retention_partitions_dropped_total`, `retention_sweep_duration_seconds`. On
 * start, the partitions of `messages` for the months ahead are created.
 */
async function retention(app: FastifyInstance, { config }: { config: Config }) {
  const registers = [app.metricsRegistry]
  const sweeps = new Counter({ name: 'retention_sweeps_total', help: 'Retention sweeps run', registers })
  const skipped = new Counter({
    name: 'retention_sweeps_skipped_total',
    help: 'Timed retention sweeps not run because another sweep (on any instance) held the lease',
    registers,
  })
  const sessions = new Counter({
    name: 'retention_sessions_deleted_total',
    help: 'Sessions deleted by retention sweeps',
    registers,
  })
  const messages = new Counter({
    name: 'retention_messages_deleted_total',
    help: 'Messages deleted by retention sweeps',
    registers,
  })
  const partitions = new Counter({
    name: 'retention_partitions_dropped_total',
    help: 'Monthly partitions of messages dropped whole by retention sweeps (every session in them had expired)',
    registers,
  })
  const duration = new Histogram({
    name: 'retention_sweep_duration_seconds',
    help: 'Duration of retention sweeps',
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers,
  })
  const sweeper = new RetentionSweeper(app.repository, {
    batchSize: config.RETENTION_SWEEP_BATCH_SIZE,
    leaseSeconds: LEASE_SECONDS,
    onSweep(result, seconds) {
      sweeps.inc()
      sessions.inc(result.deletedSessions)
      messages.inc(result.deletedMessages)
      partitions.inc(result.droppedPartitions)
      duration.observe(seconds)
      if (result.deletedSessions > 0 || result.droppedPartitions > 0)
        app.log.info({ ...result, seconds }, 'retention sweep')
    },
  })
  app.decorate('retentionSweeper', sweeper)

  const intervalMs = config.RETENTION_SWEEP_INTERVAL_SECONDS * 1000
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  const tick = async () => {
    try {
      await sweeper.sweep()
    } catch (err) {
      if (err instanceof SweepBusyError) skipped.inc()
      else app.log.warn({ err }, 'retention sweep failed; the next one retries')
    }
  }
  const schedule = () => {
    timer = setTimeout(() => {
      running = tick().finally(() => {
        running = undefined
        if (timer) schedule()
      })
    }, intervalMs)
    timer.unref()
  }
  // The months ahead get their partitions on start (and with every timed sweep): a write never waits for one.
  app.addHook('onReady', async () => {
    try {
      await app.repository.ensurePartitions()
    } catch (err) {
      app.log.warn({ err }, 'creating the partitions ahead failed; the next sweep retries')
    }
  })
  if (intervalMs > 0) app.addHook('onReady', async () => schedule())
  app.addHook('onClose', async () => {
    clearTimeout(timer)
    timer = undefined
    sweeper.stop()
    await running
  })
}

export default fp(retention, { name: 'retention', dependencies: ['repository', 'message-store-metrics'] })
