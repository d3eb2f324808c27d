/**
 * Which instances of a service take requests: the origins of an undici `BalancedPool`, kept in step with
 * the instances' health. Plain TypeScript: the pool and the readiness probe are given.
 *
 * - An instance leaves the rotation at once when a connection to it fails (refused, reset, closed by the
 *   other side: the pool's `connectionError` / `disconnect` events), or when it does not answer its
 *   `GET /ready` with 200 on a poll.
 * - It comes back when it answers `GET /ready` with 200 again (polled every `intervalMs`).
 * - The last instance in rotation is never removed: with every instance down, requests still go to it and
 *   fail fast (a connection error: the caller's clear 503), and an `all-down` event says so.
 */

/** The part of undici's BalancedPool the rotation drives. */
export interface RotationPool {
  addUpstream(origin: string): unknown
  removeUpstream(origin: string): unknown
  on(event: 'connectionError' | 'disconnect', listener: (...args: unknown[]) => void): unknown
  off(event: 'connectionError' | 'disconnect', listener: (...args: unknown[]) => void): unknown
}

export type RotationEvent =
  | { type: 'removed'; origin: string; reason: string }
  | { type: 'added'; origin: string }
  /** Every instance failed: `origin`, the last one, stays in rotation so that requests fail fast. */
  | { type: 'all-down'; origin: string; reason: string }

export interface UpstreamRotationOptions {
  /** Every instance's origin (`http://host:port`); all start in rotation. */
  origins: readonly string[]
  pool: RotationPool
  /** Milliseconds between two polls of every instance's readiness. */
  intervalMs: number
  /** Resolves true when the instance is ready (e.g. its `GET /ready` answered 200); never throws. */
  probe: (origin: string, signal: AbortSignal) => Promise<boolean>
  onChange?: (event: RotationEvent) => void
}

export interface UpstreamRotation {
  /** The origins taking requests now. */
  inRotation(): string[]
  /** Takes `origin` out of rotation (unless it is the last one). */
  failed(origin: string, reason: string): void
  /** Polls every instance once now (the interval polls go on). */
  pollNow(): Promise<void>
  /** Stops polling and listening; an in-flight poll is aborted. */
  close(): void
}

/** Socket errors of a connection that was open: the instance went away (crashed, stopped). */
const GONE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

const originOf = (value: unknown) => new URL(String(value)).origin
const codeOf = (error: unknown) => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

export function startUpstreamRotation(opts: UpstreamRotationOptions): UpstreamRotation {
  const origins = opts.origins.map(originOf)
  const inRotation = new Set(origins)
  const notify = opts.onChange ?? (() => {})
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let polling: { done: Promise<void>; abort: AbortController } | undefined

  function failed(origin: string, reason: string) {
    if (closed || !inRotation.has(origin)) return
    if (inRotation.size === 1) {
      notify({ type: 'all-down', origin, reason })
      return
    }
    inRotation.delete(origin)
    opts.pool.removeUpstream(origin)
    notify({ type: 'removed', origin, reason })
  }

  function ready(origin: string) {
    if (closed || inRotation.has(origin)) return
    inRotation.add(origin)
    opts.pool.addUpstream(origin)
    notify({ type: 'added', origin })
  }

  const onConnectionError = (origin: unknown, _targets: unknown, error: unknown) =>
    failed(originOf(origin), `connection failed: ${codeOf(error) ?? String(error)}`)
  const onDisconnect = (origin: unknown, _targets: unknown, error: unknown) => {
    const code = codeOf(error)
    if (code && GONE.has(code)) failed(originOf(origin), `connection lost: ${code}`)
  }
  opts.pool.on('connectionError', onConnectionError)
  opts.pool.on('disconnect', onDisconnect)

  async function poll(signal: AbortSignal) {
    const answers = await Promise.all(origins.map((origin) => opts.probe(origin, signal).catch(() => false)))
    if (signal.aborted) return
    // the ready ones first: an instance back lets a failed one leave, even when it was the last
    for (const [index, origin] of origins.entries()) if (answers[index]) ready(origin)
    for (const [index, origin] of origins.entries()) {
      if (!answers[index]) failed(origin, 'GET /ready did not answer 200')
    }
  }

  function pollNow(): Promise<void> {
    if (closed) return Promise.resolve()
    if (!polling) {
      const abort = new AbortController()
      const done = poll(abort.signal).finally(() => {
        polling = undefined
      })
      polling = { done, abort }
    }
    return polling.done
  }

  function schedule() {
    if (closed) return
    timer = setTimeout(() => {
      void pollNow().finally(schedule)
    }, opts.intervalMs)
    timer.unref()
  }
  schedule()

  return {
    inRotation: () => origins.filter((origin) => inRotation.has(origin)),
    failed: (origin, reason) => failed(originOf(origin), reason),
    pollNow,
    close() {
      closed = true
      clearTimeout(timer)
      polling?.abort.abort()
      opts.pool.off('connectionError', onConnectionError)
      opts.pool.off('disconnect', onDisconnect)
    },
  }
}

/**
 * The default probe: `GET <base>/ready` answered 200 within `timeoutMs`. Plain fetch, outside the pool, so
 * an instance out of rotation is still asked.
 */
export function readyProbe(timeoutMs: number, path = '/ready') {
  return async (origin: string, signal: AbortSignal): Promise<boolean> => {
    try {
      const res = await fetch(new URL(path, origin), {
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      })
      await res.body?.cancel()
      return res.status === 200
    } catch {
      return false
    }
  }
}

/** A pino-like logger (Fastify's `app.log`). */
export interface RotationLog {
  info(object: object, message: string): void
  warn(object: object, message: string): void
  error(object: object, message: string): void
}

/** An `onChange` that logs each change of the rotation of `service`'s instances. */
export function logRotationChanges(log: RotationLog, service: string) {
  return (event: RotationEvent) => {
    if (event.type === 'added') log.info({ service, instance: event.origin }, `${service} instance back in rotation`)
    else if (event.type === 'removed')
      log.warn({ service, instance: event.origin, reason: event.reason }, `${service} instance out of rotation`)
    else
      log.error(
        { service, instance: event.origin, reason: event.reason },
        `every ${service} instance is down: the last one stays in rotation, requests to it fail fast`,
      )
  }
}
