import { BatchQueue, type BatchQueueOptions } from './batch-queue.js'

/** A session, by its full key. */
export interface SessionKey {
  tenant: string
  flowId: string
  sessionId: string
}

/** Looks up the versions of sessions, in order (0: no such session), in one statement. */
export type VersionQuery = (keys: SessionKey[]) => Promise<number[]>

interface Pending extends SessionKey {
  resolve: (version: number) => void
  reject: (err: unknown) => void
}

/**
 * The version lookups of cached history reads, coalesced: under load, lookups that arrive while
 * `maxInFlight` statements run go together in the next one (one round trip and one primary-key probe per
 * session instead of one statement each); an idle store sends a lookup at once. Freshness is unchanged:
 * a lookup is sent after its read arrived, so it sees every change acknowledged before that read.
 */
export class VersionLookups {
  private readonly queue: BatchQueue<Pending>

  constructor(query: VersionQuery, opts: BatchQueueOptions) {
    this.queue = new BatchQueue(async (batch) => {
      try {
        const versions = await query(batch)
        for (const [i, p] of batch.entries()) p.resolve(versions[i] ?? 0)
      } catch (err) {
        for (const p of batch) p.reject(err)
      }
    }, opts)
  }

  /** Statements run so far. */
  get statements(): number {
    return this.queue.batches
  }

  get(tenant: string, flowId: string, sessionId: string): Promise<number> {
    return new Promise((resolve, reject) => this.queue.push({ tenant, flowId, sessionId, resolve, reject }))
  }
}
