import type { Database } from '@session-runtime/db'
import type { MessageInput } from '@session-runtime/schemas'
import type { HistoryService } from './history-service.js'
import {
  insertMessages,
  MessageIdConflictError,
  markMessagesFailed,
  type StoredMessage,
  type WriteRequest,
} from './message-repository.js'

export interface MessageWriterOptions {
  /** Statements in flight at once; further writes wait and go together in the next one. */
  maxInFlight: number
  /** Most messages one statement carries. */
  maxBatchMessages: number
}

interface Pending extends WriteRequest {
  resolve: (messages: StoredMessage[]) => void
  reject: (err: unknown) => void
}

/**
 * Stores messages and updates the history cache before anyone is answered.
 *
 * Writes that arrive while `maxInFlight` statements are running are coalesced
 * into the next statement (group commit): under load, one INSERT and one commit
 * carry many callers' messages; when idle, a write goes out at once. A write is
 * acknowledged only after its statement committed and the cache was updated.
 */
export class MessageWriter {
  private readonly queue: Pending[] = []
  private inFlight = 0
  /** Statements run so far (with `writes`: how much coalescing happens). */
  statements = 0
  /** Write requests received so far. */
  writes = 0
  /** Messages persisted so far: an idempotent repeat of a stored message is not counted again. */
  stored = 0

  constructor(
    private readonly db: Database,
    private readonly history: HistoryService,
    private readonly opts: MessageWriterOptions,
  ) {}

  write(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    this.writes++
    return new Promise((resolve, reject) => {
      this.queue.push({ tenant, inputs, resolve, reject })
      this.drain()
    })
  }

  /**
   * Settles messages of a run that failed as failed: a message that is not stored yet is stored marked
   * (`error` true, `properties.state` "partial"); a stored one is marked, unless it is an error already.
   * The run-service calls this for writes it could not confirm (their answer was lost): whichever way such
   * a write went, the message ends up never reported as complete, nor read into a Memory history.
   * Idempotent. The id's primary key orders this against a late copy of the lost write: whichever
   * commits second finds the first.
   */
  async writeFailed(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    // An error message (the run's own report of its failure) is already marked: it is stored as it is.
    const marked = inputs.map((input) =>
      input.error ? input : { ...input, error: true, properties: { ...input.properties, state: 'partial' } },
    )
    const stored = await this.write(tenant, marked)
    const replayed = stored.filter((m) => !m.created).map((m) => m.id)
    const { updated, changes } = await markMessagesFailed(this.db, tenant, replayed)
    await this.history.afterChange(tenant, changes)
    return stored.map((m) => {
      const json = updated.get(m.id)
      return json === undefined ? m : { ...m, json }
    })
  }

  private drain() {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch: Pending[] = [this.queue.shift() as Pending]
      let size = batch[0]?.inputs.length ?? 0
      while (this.queue.length > 0 && size + (this.queue[0]?.inputs.length ?? 0) <= this.opts.maxBatchMessages) {
        const next = this.queue.shift() as Pending
        size += next.inputs.length
        batch.push(next)
      }
      this.inFlight++
      void this.flush(batch).finally(() => {
        this.inFlight--
        this.drain()
      })
    }
  }

  private async flush(batch: Pending[]): Promise<void> {
    let result: Awaited<ReturnType<typeof insertMessages>>
    try {
      this.statements++
      result = await insertMessages(this.db, batch)
    } catch (err) {
      // One caller's bad data must not fail the others: try each alone.
      if (batch.length > 1) {
        await Promise.all(batch.map((p) => this.flush([p])))
      } else {
        batch[0]?.reject(err)
      }
      return
    }
    this.stored += result.inserted
    await this.history.afterInsert(result.appends)
    // A replayed id may have committed in an attempt whose answer was lost: its cached history may lack it.
    await Promise.all(result.replayed.map((r) => this.history.afterChange(r.tenant, [r])))
    batch.forEach((pending, i) => {
      const outcome = result.results[i]
      if (outcome instanceof MessageIdConflictError) pending.reject(outcome)
      else pending.resolve(outcome as StoredMessage[])
    })
  }
}
