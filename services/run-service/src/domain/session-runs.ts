/**
 * One run at a time per session (issue 15; docs/run-service.md, "One run at a time per session").
 *
 * Runs on the same (tenant, flow, session) take turns: with `enqueue` a run waits for the runs that arrived
 * before it, with `reject` a run that finds another in flight is refused (SessionBusyError, before anything is
 * stored). The rule holds across instances through a shared store (`SessionTurnStore`: Postgres tables, see
 * session-run-repository.ts); inside one process the runs of a session queue here first, so only one of them
 * at a time asks the store (first come, first served).
 *
 * The store's rules, which this module relies on:
 * - a session has at most one holder; a holder whose instance stopped renewing its lease counts as gone;
 * - `take` succeeds only when the session has no live holder and no live waiter (one statement);
 * - `join` queues a waiter (tickets increase in arrival order); `promote` makes the waiter the holder when the
 *   session has no live holder and no live waiter with a lower ticket;
 * - `release` frees the session and wakes the waiters of every instance (`wake` below, through LISTEN/NOTIFY);
 *   a waiter also polls every `pollMs`, for wake-ups that never come (an instance that died holding it).
 */

export type MultitaskStrategy = 'enqueue' | 'reject'

export interface SessionKey {
  tenant: string
  flowId: string
  sessionId: string
}

/** The store shared by every instance. Tickets are opaque strings (Postgres bigints). */
export interface SessionTurnStore {
  /** Takes the session if it is free and nobody waits for it: the holder's ticket, else undefined. */
  take(key: SessionKey): Promise<string | undefined>
  /** Queues a waiter for the session: its ticket. */
  join(key: SessionKey): Promise<string>
  /** Makes the waiter `ticket` the holder if its turn has come; true if it did. */
  promote(key: SessionKey, ticket: string): Promise<boolean>
  /** Removes the waiter `ticket` (its run was cancelled while waiting); wakes the next one. */
  leave(key: SessionKey, ticket: string): Promise<void>
  /** Frees the session held by `ticket`; wakes the next waiter. */
  release(key: SessionKey, ticket: string): Promise<void>
}

/** A run with `reject` found another run in flight on its session. */
export class SessionBusyError extends Error {
  constructor(readonly key: SessionKey) {
    super(
      `Another run is in flight on session "${key.sessionId}" of this flow; with multitask_strategy "reject" this run was refused (nothing was stored)`,
    )
    this.name = 'SessionBusyError'
  }
}

export interface SessionRunsOptions {
  store: SessionTurnStore
  /** How often a waiter asks the store again without a wake-up (milliseconds). */
  pollMs: number
  log?: { warn(obj: object, msg: string): void }
}

/** One run's place in its session's local queue. */
interface LocalEntry {
  /** Resolves when the runs before it in this process are done. */
  turn: Promise<void>
  startTurn: () => void
}

/** A waiter of this process sleeping until a wake-up, the poll or its cancellation. */
interface Sleeper {
  wake: () => void
}

export const sessionKeyId = (key: SessionKey): string => JSON.stringify([key.tenant, key.flowId, key.sessionId])

const abortReason = (signal: AbortSignal): unknown =>
  signal.reason ?? new DOMException('This operation was aborted', 'AbortError')

/**
 * The per-session rule of one process. `inTurn` runs a function while holding its session; `wake` is called
 * when another instance (or this one) released a session; `retryReleases` (each heartbeat) retries the
 * releases that failed (the database was unreachable), so a session is never left held by a live instance.
 */
export class SessionRuns {
  private readonly queues = new Map<string, LocalEntry[]>()
  private readonly sleepers = new Map<string, Sleeper>()
  private readonly failedReleases = new Map<string, { key: SessionKey; ticket: string }>()

  constructor(private readonly opts: SessionRunsOptions) {}

  /** Sessions with a run in flight or waiting in this process. */
  get activeSessions(): number {
    return this.queues.size
  }

  /** Releases that failed and wait for a retry. */
  get pendingReleases(): number {
    return this.failedReleases.size
  }

  /**
   * Runs `fn` once it is the session's turn and frees the session when `fn` settles (before its result is
   * passed on, so that a client that sends its next run on the answer finds the session free). `signal`
   * cancels the wait. With `reject`, throws SessionBusyError at once if another run is in flight or waiting.
   */
  async inTurn<T>(
    key: SessionKey,
    strategy: MultitaskStrategy,
    signal: AbortSignal | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    const release = await this.acquire(key, strategy, signal)
    try {
      return await fn()
    } finally {
      await release()
    }
  }

  /** Waits for the session's turn; resolves the function that frees it (call it once). */
  async acquire(key: SessionKey, strategy: MultitaskStrategy, signal?: AbortSignal): Promise<() => Promise<void>> {
    signal?.throwIfAborted()
    const id = sessionKeyId(key)
    let queue = this.queues.get(id)
    if (queue && strategy === 'reject') throw new SessionBusyError(key)
    if (!queue) {
      queue = []
      this.queues.set(id, queue)
    }
    const entry = localEntry(queue.length === 0)
    queue.push(entry)
    let ticket: string
    try {
      await abortable(entry.turn, signal)
      ticket = await this.takeInStore(id, key, strategy, signal)
    } catch (error) {
      this.leaveLocal(id, entry)
      throw error
    }
    let released = false
    return async () => {
      if (released) return
      released = true
      try {
        await this.opts.store.release(key, ticket)
      } catch (error) {
        // the session stays held by this (live) instance until a retry gets through
        this.failedReleases.set(ticket, { key, ticket })
        this.opts.log?.warn({ err: error }, 'session release failed; retried with the next heartbeat')
      } finally {
        this.leaveLocal(id, entry)
      }
    }
  }

  /** A session was released somewhere: its waiter in this process (if any) asks the store again. */
  wake(key: SessionKey): void {
    this.sleepers.get(sessionKeyId(key))?.wake()
  }

  /** Retries the releases that failed; resolves how many are still pending. */
  async retryReleases(): Promise<number> {
    for (const [ticket, { key }] of [...this.failedReleases]) {
      try {
        await this.opts.store.release(key, ticket)
        this.failedReleases.delete(ticket)
      } catch {
        break // still unreachable: the next heartbeat tries again
      }
    }
    return this.failedReleases.size
  }

  private async takeInStore(
    id: string,
    key: SessionKey,
    strategy: MultitaskStrategy,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const { store } = this.opts
    const taken = await store.take(key)
    if (taken !== undefined) return taken
    if (strategy === 'reject') throw new SessionBusyError(key)
    signal?.throwIfAborted()
    const ticket = await store.join(key)
    try {
      for (;;) {
        // listening before asking: a release while the store answers is not missed
        const sleep = this.sleep(id, signal)
        let promoted: boolean
        try {
          promoted = await store.promote(key, ticket)
        } catch (error) {
          sleep.cancel()
          throw error
        }
        if (promoted) {
          sleep.cancel()
          return ticket
        }
        await sleep.done
      }
    } catch (error) {
      await store.leave(key, ticket).catch((leaveError: unknown) => {
        // its instance's lease keeps the ticket alive; the waiters behind it are stuck until it is removed or
        // this instance stops: log it
        this.opts.log?.warn({ err: leaveError }, 'leaving the session queue failed')
      })
      throw error
    }
  }

  /** Resolves on `wake(key)` or after `pollMs`; rejects when `signal` aborts. */
  private sleep(id: string, signal: AbortSignal | undefined): { done: Promise<void>; cancel: () => void } {
    let finish: (error?: unknown) => void = () => {}
    const done = new Promise<void>((resolve, reject) => {
      finish = (error) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (this.sleepers.get(id) === sleeper) this.sleepers.delete(id)
        if (error === undefined) resolve()
        else reject(error)
      }
    })
    const onAbort = () => finish(abortReason(signal as AbortSignal))
    const timer = setTimeout(() => finish(), this.opts.pollMs)
    const sleeper: Sleeper = { wake: () => finish() }
    this.sleepers.set(id, sleeper)
    if (signal?.aborted) onAbort()
    else signal?.addEventListener('abort', onAbort, { once: true })
    return { done, cancel: () => finish() }
  }

  /** Removes `entry` from its session's local queue; the next run of the session in this process goes on. */
  private leaveLocal(id: string, entry: LocalEntry): void {
    const queue = this.queues.get(id)
    if (!queue) return
    const index = queue.indexOf(entry)
    if (index === -1) return
    queue.splice(index, 1)
    if (queue.length === 0) this.queues.delete(id)
    else if (index === 0) queue[0]?.startTurn()
  }
}

function localEntry(first: boolean): LocalEntry {
  let startTurn: () => void = () => {}
  const turn = first ? Promise.resolve() : new Promise<void>((resolve) => (startTurn = resolve))
  return { turn, startTurn }
}

/** `promise`, or the abort of `signal`, whichever comes first. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise
  signal.throwIfAborted()
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, reject)
  })
}
