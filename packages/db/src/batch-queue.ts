export interface BatchQueueOptions {
  /** Batches in flight at once; items arriving meanwhile wait and go together in the next one. */
  maxInFlight: number
  /** Most size units (see `size`) one batch carries. */
  maxBatch: number
  /**
   * Send at the end of the event loop's turn (setImmediate) instead of at once: everything pushed during one
   * turn (every request whose bytes arrived in it) goes in one batch, even on an idle queue, and a batch that
   * ends does not send the next one before the turn's arrivals are in. One statement and one socket write for
   * the lot instead of one for the first arrival and one for the rest; a push waits at most for the rest of
   * its turn. Default false: an item goes out at once when a slot is free.
   */
  gatherTurn?: boolean
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
  private scheduled = false
  /** Batches run so far. */
  batches = 0

  constructor(
    private readonly run: (batch: T[]) => Promise<void>,
    private readonly opts: BatchQueueOptions,
    private readonly size: (item: T) => number = () => 1,
  ) {}

  push(item: T): void {
    this.queue.push(item)
    this.next()
  }

  private next() {
    if (!this.opts.gatherTurn) return this.drain()
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.drain()
    })
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
        this.next()
      })
    }
  }
}

export interface BatchedCallsOptions<I = unknown, O = unknown> extends BatchQueueOptions {
  /**
   * After a coalesced statement failed: true runs each of its calls alone, so that one caller's bad input (or
   * a deadlock between two instances' batches) does not fail the others. Default: never (every call of the
   * batch gets the error).
   */
  retryAlone?: (err: unknown) => boolean
  /**
   * The statement for a batch of one call, when it is cheaper than the batched form (whose unnest and joins
   * cost more when they carry one row): an idle caller, and each call retried alone, use it. Default: `run`.
   */
  one?: (input: I) => Promise<O>
}

interface PendingCall<I, O> {
  input: I
  resolve: (output: O) => void
  reject: (err: unknown) => void
}

/**
 * Calls that one statement can answer together (a BatchQueue of them): `run` gets the inputs of a batch and
 * answers their outputs in the same order.
 */
export class BatchedCalls<I, O> {
  private readonly queue: BatchQueue<PendingCall<I, O>>
  /** Calls retried alone after their coalesced statement failed. */
  private retries = 0

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly opts: BatchedCallsOptions<I, O>,
  ) {
    this.queue = new BatchQueue((batch) => this.flush(batch), opts)
  }

  /** Statements run so far. */
  get statements(): number {
    return this.queue.batches + this.retries
  }

  call(input: I): Promise<O> {
    return new Promise((resolve, reject) => this.queue.push({ input, resolve, reject }))
  }

  private async flush(batch: PendingCall<I, O>[]): Promise<void> {
    let outputs: O[]
    try {
      const { one } = this.opts
      outputs =
        batch.length === 1 && one
          ? [await one((batch[0] as PendingCall<I, O>).input)]
          : await this.run(batch.map((pending) => pending.input))
      if (outputs.length !== batch.length) throw new Error(`a batch of ${batch.length} answered ${outputs.length}`)
    } catch (err) {
      if (batch.length > 1 && this.opts.retryAlone?.(err)) {
        this.retries += batch.length
        await Promise.all(batch.map((pending) => this.flush([pending])))
      } else {
        for (const pending of batch) pending.reject(err)
      }
      return
    }
    for (const [i, pending] of batch.entries()) pending.resolve(outputs[i] as O)
  }
}
