import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import {
  parseWakePayload,
  SESSION_RELEASED_CHANNEL,
  sessionRunRepository,
} from '../../domain/session-run-repository.js'
import { type MultitaskStrategy, type SessionKey, SessionRuns } from '../../domain/session-runs.js'

/** What the run route needs of the per-session rule. */
export interface SessionTurns {
  /** Waits for the session's turn (`reject`: SessionBusyError if it is not free); resolves its release. */
  acquire(key: SessionKey, strategy: MultitaskStrategy, signal?: AbortSignal): Promise<() => Promise<void>>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** One run at a time per session (docs/run-service.md, "One run at a time per session"). */
    sessionTurns: SessionTurns
  }
}

export interface SessionRunsPluginOptions {
  /** false: runs of a session may overlap (only to measure the rule's cost). */
  enabled: boolean
  /** How long an instance's hold on its sessions outlives its last heartbeat. */
  leaseMs: number
  heartbeatMs: number
  /** How often a waiting run asks again without a wake-up. */
  pollMs: number
}

/** Sweeps for dead instances' rows every this many heartbeats. */
const SWEEP_EVERY = 10

const noRule: SessionTurns = { acquire: async () => async () => {} }

/**
 * The per-session rule across the instances (src/domain/session-runs.ts on the tables of migration 005): this
 * instance's lease, renewed every `heartbeatMs` (with the retry of failed releases and, now and then, the
 * sweep of dead instances' rows); the wake-ups of waiting runs by LISTEN on their own connection (when the
 * database offers it), with polling as the fallback. On close: stops, and frees what the instance holds.
 */
async function sessionRuns(app: FastifyInstance, opts: SessionRunsPluginOptions) {
  if (!opts.enabled) {
    app.decorate('sessionTurns', noRule)
    return
  }
  const log = app.log.child({ component: 'session-runs' })
  const instanceId = randomUUID()
  const repository = sessionRunRepository(app.db, instanceId, app.db.schema)
  await repository.heartbeat(opts.leaseMs)
  const runs = new SessionRuns({ store: repository, pollMs: opts.pollMs, log })
  const unlisten = await app.db.listen?.(SESSION_RELEASED_CHANNEL, (payload) => {
    const key = parseWakePayload(app.db.schema, payload)
    if (key) runs.wake(key)
  })

  let stopped = false
  let beats = 0
  let timer: NodeJS.Timeout | undefined
  let beating: Promise<void> = Promise.resolve()
  const beat = async () => {
    try {
      await repository.heartbeat(opts.leaseMs)
      await runs.retryReleases()
      if (++beats % SWEEP_EVERY === 0) await repository.sweep()
    } catch (err) {
      log.warn({ err }, 'session lease heartbeat failed')
    }
  }
  const schedule = () => {
    timer = setTimeout(() => {
      beating = beat().finally(() => {
        if (!stopped) schedule()
      })
    }, opts.heartbeatMs)
    timer.unref()
  }
  schedule()

  app.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    await beating
    await unlisten?.().catch(() => {})
    await repository.stop().catch((err: unknown) => log.warn({ err }, 'freeing the sessions at shutdown failed'))
  })
  app.decorate('sessionTurns', runs satisfies SessionTurns)
}

export default fp(sessionRuns, { name: 'session-runs', dependencies: ['database'] })
