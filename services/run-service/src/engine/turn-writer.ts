import type { Message, MessageInput } from '@session-runtime/schemas'
import { draftMessage } from './messages.js'
import { type HistoryRequest, type MessagePort, PartialWriteError } from './ports.js'

/** One message of a run on its way to the store, and where it came from. */
export interface TurnWrite<Origin> {
  readonly input: MessageInput
  /** What the emitting component got back: the message as it will be stored, but for the timestamp. */
  readonly draft: Message
  readonly origin: Origin
}

/** A write of the run failed at `write`: the messages written with it before it are stored, it and the rest not. */
export class TurnWriteError<Origin> extends Error {
  constructor(
    readonly write: TurnWrite<Origin>,
    options: { cause: unknown },
  ) {
    super('a message of the run could not be stored', options)
    this.name = 'TurnWriteError'
  }
}

export interface TurnWriterOptions {
  /** `add` only keeps the message, and `flush` stores what was kept; otherwise `add` stores it at once. */
  deferred: boolean
  /** Told of every stored message, in the order the messages were added. */
  onStored?: (message: Message) => void
}

/**
 * The message writes of one run (one turn of a conversation). Deferred, a run makes one write (one call
 * to the message-store, one INSERT) for the messages emitted between two flushes instead of one per
 * message: the executor flushes before anything that waits on the world (a history read, a model call),
 * before a component that may read what the store assigns, when a component fails, and at the end.
 * Flushes never overlap: each waits for the one before it, so messages reach the store in the order
 * they were emitted, and the store orders them so (timestamp, then sequence).
 */
export class TurnWriter<Origin> {
  private pending: TurnWrite<Origin>[] = []
  /** Drafts not stored (yet): kept, being written, or failed. */
  private readonly unstored = new Set<Message>()
  /** Draft → the stored message. */
  private readonly stored = new Map<Message, Message>()
  private last: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly port: MessagePort,
    private readonly opts: TurnWriterOptions,
  ) {}

  /** Deferred: keeps the message and answers its draft. Otherwise: stores it and answers the stored message. */
  async add(input: MessageInput, origin: Origin, signal: AbortSignal): Promise<Message> {
    if (!this.opts.deferred) {
      const stored = await this.port.store(input, { signal })
      this.opts.onStored?.(stored)
      return stored
    }
    signal.throwIfAborted()
    const draft = draftMessage(input)
    this.pending.push({ input, draft, origin })
    this.unstored.add(draft)
    return draft
  }

  /** Whether messages wait for a flush. */
  get hasPending(): boolean {
    return this.pending.length > 0
  }

  /** Whether `message` is a draft that is not stored (yet). */
  isUnstored(message: Message): boolean {
    return this.unstored.has(message)
  }

  /** The stored message of a stored draft; any other message as it is. */
  current(message: Message): Message {
    return this.stored.get(message) ?? message
  }

  /**
   * Stores the kept messages in one write, in the order they were added, once the flushes before this one
   * have ended. Rejects with TurnWriteError when the write fails, or with the reason of `signal` if it is
   * aborted when the write would start (the messages are then still kept).
   */
  flush(signal: AbortSignal): Promise<void> {
    const flushed = this.last.then(() => this.write(signal))
    this.last = flushed.catch(() => {})
    return flushed
  }

  /**
   * A flush that carries a history read: with what is kept, one exchange where the port can
   * (`storeThenHistory`). Rejects as `flush` does when the write fails; resolves with the read, to call next:
   * it answers what came back with the write, or reads now when nothing was kept or the port has no such
   * exchange.
   */
  async flushThenHistory(query: HistoryRequest, signal: AbortSignal): Promise<() => Promise<Message[]>> {
    const port = this.port
    const read = () => port.history(query, { signal })
    const storeThenHistory = port.storeThenHistory?.bind(port)
    if (!storeThenHistory) {
      await this.flush(signal)
      return read
    }
    let answered: (() => Promise<Message[]>) | undefined
    const flushed = this.last.then(() =>
      this.write(signal, async (inputs) => {
        const answer = await storeThenHistory(inputs, query, { signal })
        answered = async () => answer.history
        return answer.stored
      }),
    )
    this.last = flushed.catch(() => {})
    await flushed
    return answered ?? read
  }

  private async write(
    signal: AbortSignal,
    storeAll: (inputs: MessageInput[]) => Promise<readonly Message[]> = (inputs) => this.storeAll(inputs, signal),
  ): Promise<void> {
    if (this.pending.length === 0) return
    signal.throwIfAborted()
    const writes = this.pending
    this.pending = []
    let stored: readonly Message[]
    try {
      stored = await storeAll(writes.map((write) => write.input))
    } catch (error) {
      const partial = error instanceof PartialWriteError ? error : undefined
      const done = partial?.stored.slice(0, writes.length - 1) ?? []
      this.settle(writes, done)
      throw new TurnWriteError(writes[done.length] as TurnWrite<Origin>, { cause: partial ? partial.cause : error })
    }
    if (stored.length !== writes.length) {
      const cause = new Error(`the message port answered ${stored.length} messages for ${writes.length}`)
      throw new TurnWriteError(writes[0] as TurnWrite<Origin>, { cause })
    }
    this.settle(writes, stored)
  }

  /** One message: the port's single write; several: its batch write, else one write after another. */
  private async storeAll(inputs: MessageInput[], signal: AbortSignal): Promise<readonly Message[]> {
    if (inputs.length === 1) return [await this.port.store(inputs[0] as MessageInput, { signal })]
    if (this.port.storeMany) return this.port.storeMany(inputs, { signal })
    const stored: Message[] = []
    for (const input of inputs) {
      try {
        stored.push(await this.port.store(input, { signal }))
      } catch (error) {
        throw new PartialWriteError(stored, { cause: error })
      }
    }
    return stored
  }

  private settle(writes: readonly TurnWrite<Origin>[], stored: readonly Message[]): void {
    stored.forEach((message, index) => {
      const draft = (writes[index] as TurnWrite<Origin>).draft
      this.stored.set(draft, message)
      this.unstored.delete(draft)
      this.opts.onStored?.(message)
    })
  }
}
