import { BatchedCalls, type BatchQueueOptions } from '@session-runtime/db'

/** A session, by its full key. */
export interface SessionKey {
  tenant: string
  flowId: string
  sessionId: string
}

/** Looks up the versions of sessions, in order (0: no such session), in one statement. */
export type VersionQuery = (keys: SessionKey[]) => Promise<number[]>

/**
 * The version lookups of cached history reads, coalesced: under load, lookups that arrive while
 * `maxInFlight` statements run go together in the next one (one round trip and one primary-key probe per
 * session instead of one statement each); an idle store sends a lookup at once. Freshness is unchanged:
 * a lookup is sent after its read arrived, so it sees every change acknowledged before that read.
 */
export class VersionLookups {
  private readonly calls: BatchedCalls<SessionKey, number>

  constructor(query: VersionQuery, opts: BatchQueueOptions) {
    this.calls = new BatchedCalls(async (keys) => {
      const versions = await query(keys)
      return keys.map((_, i) => versions[i] ?? 0)
    }, opts)
  }

  /** Statements run so far. */
  get statements(): number {
    return this.calls.statements
  }

  get(tenant: string, flowId: string, sessionId: string): Promise<number> {
    return this.calls.call({ tenant, flowId, sessionId })
  }
}
