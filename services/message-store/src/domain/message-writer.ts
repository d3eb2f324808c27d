import type { MessageInput } from '@session-runtime/schemas'
import { MessageIdConflictError } from './repository/errors.js'
import type { InsertResult, StoredMessage, WriteRequest } from './repository/insert.js'

export interface MessageWriterOptions {
  /** Statements in flight at once; further writes wait and go together in the next one. */
  maxInFlight: number
  /** Most messages one statement carries. */
  maxBatchMessages: number
}

/** Stores the requests in one statement and updates the history cache before it resolves. */
export type InsertStatement = (requests: WriteRequest[]) => Promise<InsertResult>

interface Pending extends WriteRequest {
  resolve: (messages: StoredMessage[]) => void
  reject: (err: unknown) => void
}

/**
 * Batches writes into insert statements (the statement itself, and its cache step, are the
 * repository's: see MessageRepository).
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
    private readonly insert: InsertStatement,
    private readonly opts: MessageWriterOptions,
  ) {}

  write(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    this.writes++
    return new Promise((resolve, reject) => {
      this.queue.push({ tenant, inputs, resolve, reject })
      this.drain()
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
    let result: InsertResult
    try {
      this.statements++
      result = await this.insert(batch)
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
    batch.forEach((pending, i) => {
      const outcome = result.results[i]
      if (outcome instanceof MessageIdConflictError) pending.reject(outcome)
      else pending.resolve(outcome as StoredMessage[])
    })
  }
}
