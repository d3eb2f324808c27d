import { randomUUID } from 'node:crypto'
import type { MessagePartition } from './repository/partitions.js'
import type { RetentionRule, SweepBatch } from './repository/retention.js'

/** What the sweeper needs of the repository (MessageRepository implements it). */
export interface RetentionStore {
  retentionRules(tenant?: string): Promise<RetentionRule[]>
  acquireSweepLease(holder: string, leaseSeconds: number): Promise<boolean>
  releaseSweepLease(holder: string): Promise<void>
  /** Deletes one batch and drops the sessions' cached histories; null: the lease is lost (stop). */
  sweepRetentionBatch(
    holder: string,
    leaseSeconds: number,
    rule: RetentionRule,
    limit: number,
    after: string | null,
  ): Promise<Omit<SweepBatch, 'changes'> | null>
  /**
   * Creates the partitions ahead, then drops every past partition whose sessions have all expired (and forgets its
   * ids); null: the lease is lost (stop).
   */
  dropExpiredPartitions(
    holder: string,
    leaseSeconds: number,
  ): Promise<{ dropped: MessagePartition[]; messages: number } | null>
  /** After the sweep: refreshes the sessions that still meet a dropped partition's range (and their cache). */
  repairDroppedPartitions(dropped: MessagePartition[]): Promise<void>
}

export interface RetentionSweeperOptions {
  /** Most sessions one batch (one statement, one transaction) deletes. */
  batchSize: number
  /** How long a lease lasts without a batch renewing it (an instance that died mid-sweep frees it then). */
  leaseSeconds: number
  /** Called after every sweep that ran (for the metrics). */
  onSweep?: (result: SweepResult, seconds: number) => void
}

export interface SweepResult {
  deletedSessions: number
  /** Messages deleted row by row, and those of dropped partitions. */
  deletedMessages: number
  /** Partitions dropped whole (sweeps of every tenant only). */
  droppedPartitions: number
}

/** The sweep could not start: another sweep (this instance's or another's) holds the lease. */
export class SweepBusyError extends Error {
  override name = 'SweepBusyError'
  constructor() {
    super('A retention sweep is running; try again when it is done')
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Drops the partitions of `messages` whose sessions have all expired (sweeps of every tenant), then deletes the
 * sessions that have been idle longer than their retention, rule by rule, in batches of at most
 * `batchSize` sessions, each in its own short transaction. At most one sweep runs at a time over the whole
 * database, on whichever instance: a sweep holds the lease row (renewed by every batch, which also takes a
 * transaction-level advisory lock) from its start to its end.
 */
export class RetentionSweeper {
  private stopping = false

  constructor(
    private readonly store: RetentionStore,
    private readonly opts: RetentionSweeperOptions,
  ) {}

  /**
   * One sweep of one tenant's rules, or of every tenant's (`tenant` undefined). With `waitMs`, waits up to that
   * long for a running sweep to end; throws SweepBusyError if the lease stays taken.
   */
  async sweep(tenant?: string, waitMs = 0): Promise<SweepResult> {
    const holder = randomUUID()
    const deadline = Date.now() + waitMs
    while (!(await this.store.acquireSweepLease(holder, this.opts.leaseSeconds))) {
      if (this.stopping || Date.now() >= deadline) throw new SweepBusyError()
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())))
    }
    const started = performance.now()
    const result: SweepResult = { deletedSessions: 0, deletedMessages: 0, droppedPartitions: 0 }
    try {
      // A sweep of every tenant first drops the partitions whose sessions all expired (a partition holds every
      // tenant's messages of its month); the batches then delete those sessions' rows, and their messages in
      // other partitions, as they delete any expired session.
      let dropped: MessagePartition[] = []
      if (tenant === undefined) {
        const drop = await this.store.dropExpiredPartitions(holder, this.opts.leaseSeconds)
        if (drop === null) return result
        dropped = drop.dropped
        result.droppedPartitions = dropped.length
        result.deletedMessages += drop.messages
      }
      for (const rule of await this.store.retentionRules(tenant)) {
        if (!(await this.sweepRule(holder, rule, result))) break
      }
      if (dropped.length > 0) await this.store.repairDroppedPartitions(dropped)
    } finally {
      await this.store.releaseSweepLease(holder).catch(() => {})
      this.opts.onSweep?.(result, (performance.now() - started) / 1000)
    }
    return result
  }

  /** Stops sweeps after their current batch (the app is closing). */
  stop(): void {
    this.stopping = true
  }

  /** Deletes one rule's expired sessions batch by batch; false when the sweep must stop. */
  private async sweepRule(holder: string, rule: RetentionRule, result: SweepResult): Promise<boolean> {
    let after: string | null = null
    for (;;) {
      if (this.stopping) return false
      const batch = await this.store.sweepRetentionBatch(
        holder,
        this.opts.leaseSeconds,
        rule,
        this.opts.batchSize,
        after,
      )
      if (batch === null) return false
      after = batch.lastTs
      result.deletedSessions += batch.sessions
      result.deletedMessages += batch.messages
      // Fewer than a full batch: none left (or the rest are being written to right now: kept, they are active).
      if (batch.sessions < this.opts.batchSize) return true
    }
  }
}
