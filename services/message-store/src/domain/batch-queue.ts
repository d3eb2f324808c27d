export interface BatchQueueOptions {
  /** Batches in flight at once; items arriving meanwhile wait and go together in the next one. */
  maxInFlight: number
  /** Most size units (see `size`) one batch carries. */
  maxBatch: number
}

/**
 * Coalesces work under load without delaying it when idle: an item goes out at once while fewer than
 * `maxInFlight` batches run; items that arrive while all slots are busy wait and go together in the next
 * batch. Used for group-commit writes (MessageWriter) and for the history reads' version lookups
 * (VersionLookups): one statement and one round trip carry many callers' work.
 */
export class BatchQueue<T> {
  private readonly queue: T[] = []
  private inFlight = 0
  /** Batches run so far. */
  batches = 0

  constructor(
    private readonly run: (batch: T[]) => Promise<void>,
    private readonly opts: BatchQueueOptions,
    private readonly size: (item: T) => number = () => 1,
  ) {}

  push(item: T): void {
    this.queue.push(item)
    this.drain()
  }

  private drain() {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch: T[] = [this.queue.shift() as T]
      let size = this.size(batch[0] as T)
      while (this.queue.length > 0 && size + this.size(this.queue[0] as T) <= this.opts.maxBatch) {
        const next = this.queue.shift() as T
        size += this.size(next)
        batch.push(next)
      }
      this.inFlight++
      this.batches++
      void this.run(batch).finally(() => {
        this.inFlight--
        this.drain()
      })
    }
  }
}
