import type { MessageInput } from '@session-runtime/schemas'

/**
 * A message write of a failed run that was never confirmed: the message-store went away (or the run was
 * cancelled) while the write was in flight, so it may have committed — a reply stored as complete for a
 * run that answered 503. Such writes are settled: the message-store stores or marks each message as failed
 * (`error` true, `properties.state` "partial"), so no failed run's message reads as complete or feeds a
 * Memory history.
 */
export interface UnconfirmedMessage {
  tenant: string
  message: MessageInput
}

/** Where recorded writes wait until settled (the run-service's table); survives a restart. */
export interface UnconfirmedOutbox {
  add(entries: readonly UnconfirmedMessage[]): Promise<void>
  /** The oldest entries, at most `limit`. */
  oldest(limit: number): Promise<UnconfirmedMessage[]>
  remove(entries: readonly UnconfirmedMessage[]): Promise<void>
}

/** The message-store's side: settles a tenant's messages as failed (idempotent on id). */
export interface FailedMessageStore {
  storeFailed(tenant: string, messages: MessageInput[]): Promise<unknown>
}

export type SettleOutcome = 'recorded' | 'settled' | 'dropped'

export interface UnconfirmedMessagesOptions {
  outbox: UnconfirmedOutbox
  store: FailedMessageStore
  /** True when a failure of `storeFailed` is worth another try (the store is unavailable); else the store refused. */
  isTransient(err: unknown): boolean
  /** Entries per outbox read and per settle call. Default 100. */
  batchSize?: number
  /** Outbox reads per round at most (a round stays short; the next one goes on). Default 10. */
  maxBatchesPerRound?: number
  log?: { warn(obj: object, msg: string): void }
  /** Counts what happens to entries (metrics). */
  onCount?(outcome: SettleOutcome, count: number): void
}

export interface SettleRound {
  settled: number
  dropped: number
  /** The message-store could not be reached: the rest waits for the next round. */
  storeUnavailable: boolean
}

const key = (entry: UnconfirmedMessage) => `${entry.tenant}\u0000${entry.message.id}`

/**
 * Records unconfirmed writes (in memory at once, then in the outbox table) and settles them with the
 * message-store in rounds: `start()` runs a round every interval while there is anything to do. If the
 * database cannot take an entry it stays in memory and is settled from there (lost only if the process
 * dies before the store answers again).
 */
export class UnconfirmedMessages {
  private readonly unsaved = new Map<string, UnconfirmedMessage>()
  /** Rows may wait in the outbox: true at start (an earlier process may have left some) and after a save. */
  private outboxMayHaveRows = true
  private round: Promise<SettleRound> | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly batchSize: number
  private readonly maxBatchesPerRound: number

  constructor(private readonly opts: UnconfirmedMessagesOptions) {
    this.batchSize = opts.batchSize ?? 100
    this.maxBatchesPerRound = opts.maxBatchesPerRound ?? 10
  }

  /** Records a write that was not confirmed; returns at once (the next round saves and settles it). */
  record(tenant: string, message: MessageInput): void {
    this.unsaved.set(key({ tenant, message }), { tenant, message })
    this.opts.onCount?.('recorded', 1)
  }

  /** Nothing recorded waits in memory, and the outbox was found empty. */
  get idle(): boolean {
    return this.unsaved.size === 0 && !this.outboxMayHaveRows
  }

  /** Entries recorded but not yet saved in the outbox (nor settled). */
  get unsavedCount(): number {
    return this.unsaved.size
  }

  /** One round: saves what was recorded, then settles, oldest first. Rounds never overlap. */
  settle(): Promise<SettleRound> {
    this.round ??= this.settleOnce().finally(() => {
      this.round = undefined
    })
    return this.round
  }

  /** A round every `intervalMs` while there is work (the timer does not keep the process alive). */
  start(intervalMs: number): void {
    if (this.timer) return
    this.timer = setInterval(() => {
      if (!this.idle) void this.settle()
    }, intervalMs)
    this.timer.unref()
  }

  /** Stops the rounds; waits for the one under way, then saves what is still only in memory. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.round
    await this.save()
  }

  private async settleOnce(): Promise<SettleRound> {
    const result: SettleRound = { settled: 0, dropped: 0, storeUnavailable: false }
    await this.save()
    // What the database could not take is settled straight from memory.
    const unsaved = [...this.unsaved.values()]
    if (unsaved.length > 0) {
      const settled = await this.settleEntries(unsaved, result)
      for (const entry of settled) this.unsaved.delete(key(entry))
      if (result.storeUnavailable) return result
    }
    for (let batch = 0; batch < this.maxBatchesPerRound && this.outboxMayHaveRows; batch++) {
      try {
        const rows = await this.opts.outbox.oldest(this.batchSize)
        if (rows.length === 0) {
          this.outboxMayHaveRows = false
          break
        }
        await this.opts.outbox.remove(await this.settleEntries(rows, result))
      } catch (err) {
        this.opts.log?.warn({ err }, 'unconfirmed message writes: the outbox cannot be read or cleared now')
        break
      }
      if (result.storeUnavailable) break
    }
    return result
  }

  /** Moves the recorded entries into the outbox; on failure they stay in memory. */
  private async save(): Promise<void> {
    const entries = [...this.unsaved.values()]
    if (entries.length === 0) return
    try {
      await this.opts.outbox.add(entries)
    } catch (err) {
      this.opts.log?.warn(
        { err, count: entries.length },
        'unconfirmed message writes: cannot save them in the database; keeping them in memory',
      )
      return
    }
    for (const entry of entries) this.unsaved.delete(key(entry))
    this.outboxMayHaveRows = true
  }

  /**
   * Settles entries tenant by tenant; returns those done with: settled, or refused by the store (dropped,
   * as a retry would be refused again). Stops at the first transient failure (sets `storeUnavailable`).
   */
  private async settleEntries(entries: readonly UnconfirmedMessage[], result: SettleRound) {
    const done: UnconfirmedMessage[] = []
    const byTenant = new Map<string, UnconfirmedMessage[]>()
    for (const entry of entries) {
      const group = byTenant.get(entry.tenant)
      if (group) group.push(entry)
      else byTenant.set(entry.tenant, [entry])
    }
    for (const [tenant, group] of byTenant) {
      for (let start = 0; start < group.length; start += this.batchSize) {
        const part = group.slice(start, start + this.batchSize)
        try {
          await this.opts.store.storeFailed(
            tenant,
            part.map((entry) => entry.message),
          )
          result.settled += part.length
          this.opts.onCount?.('settled', part.length)
        } catch (err) {
          if (this.opts.isTransient(err)) {
            result.storeUnavailable = true
            return done
          }
          this.opts.log?.warn(
            { err, tenant, count: part.length },
            'unconfirmed message writes: the message-store refused to settle them; dropping them',
          )
          result.dropped += part.length
          this.opts.onCount?.('dropped', part.length)
        }
        done.push(...part)
      }
    }
    return done
  }
}
