import { BatchQueue } from '@session-runtime/db'
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
  private readonly queue: BatchQueue<Pending>
  /** Write requests received so far. */
  writes = 0
  /** Messages persisted so far: an idempotent repeat of a stored message is not counted again. */
  stored = 0
  /** Statements of single writes retried alone after their coalesced statement failed. */
  private retries = 0

  constructor(
    private readonly insert: InsertStatement,
    opts: MessageWriterOptions,
  ) {
    this.queue = new BatchQueue(
      (batch) => this.flush(batch),
      { maxInFlight: opts.maxInFlight, maxBatch: opts.maxBatchMessages },
      (pending) => pending.inputs.length,
    )
  }

  /** Statements run so far (with `writes`: how much coalescing happens). */
  get statements(): number {
    return this.queue.batches + this.retries
  }

  write(tenant: string, inputs: MessageInput[]): Promise<StoredMessage[]> {
    this.writes++
    return new Promise((resolve, reject) => this.queue.push({ tenant, inputs, resolve, reject }))
  }

  private async flush(batch: Pending[]): Promise<void> {
    let result: InsertResult
    try {
      result = await this.insert(batch)
    } catch (err) {
      // One caller's bad data must not fail the others: try each alone.
      if (batch.length > 1) {
        this.retries += batch.length
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
