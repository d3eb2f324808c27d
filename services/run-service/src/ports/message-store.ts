import { type MessageStoreClient, MessageStoreError, MessageStoreUnavailableError } from '@session-runtime/clients'
import type { Message, MessageInput, SessionMetadataPatch } from '@session-runtime/schemas'
import type { UnconfirmedMessages } from '../domain/unconfirmed-messages.js'
import { type HistoryRequest, type MessagePort, PartialWriteError, type PortOptions } from '../engine/index.js'

/**
 * The engine's message port on the message-store, for one tenant (every call carries the request id).
 * A write that fails without a definite answer (the store unavailable after retries, or the run cancelled
 * while it was in flight) may still have committed: its messages are recorded in `unconfirmed`, which
 * settles them as failed. Such a failure always fails the run.
 */
export function messageStorePort(
  client: MessageStoreClient,
  tenant: string,
  requestId: string,
  unconfirmed: UnconfirmedMessages,
  sessionMetadata?: SessionMetadataPatch | null,
): MessagePort {
  const withMetadata = sessionMetadataCarrier(sessionMetadata)
  /** Calls `write`; if it fails without a definite answer, records `messages` as unconfirmed. */
  async function confirmed<T>(messages: readonly MessageInput[], signal: AbortSignal, write: () => Promise<T>) {
    const abortedBefore = signal.aborted
    try {
      const answer = await write()
      withMetadata.stored(messages)
      return answer
    } catch (err) {
      if (err instanceof MessageStoreUnavailableError || (signal.aborted && !abortedBefore)) {
        for (const message of messages) unconfirmed.record(tenant, message)
      }
      throw err
    }
  }

  const store = (input: MessageInput, { signal }: PortOptions): Promise<Message> => {
    const [message] = withMetadata.carry([input]) as [MessageInput]
    return confirmed([message], signal, () => client.storeMessage(tenant, message, { signal, requestId }))
  }

  /** After a refused batch (a definite answer: nothing of it stored): one message at a time, as without it. */
  async function oneByOne(messages: readonly MessageInput[], signal: AbortSignal): Promise<Message[]> {
    const stored: Message[] = []
    for (const message of messages) {
      try {
        stored.push(await store(message, { signal }))
      } catch (err) {
        throw new PartialWriteError(stored, { cause: err })
      }
    }
    return stored
  }

  /** Whether a failed batch was refused as a whole, so that its messages may go one by one. */
  const refused = (err: unknown) => err instanceof MessageStoreError && !(err instanceof MessageStoreUnavailableError)

  const history = (query: HistoryRequest, signal: AbortSignal) =>
    client.history(tenant, historyParams(query), { signal, requestId })

  return {
    store,
    /**
     * One batch write (`POST /internal/messages/batch`: one statement). If the store refuses the batch (a
     * definite answer: nothing of it stored), the messages go one at a time, as they would have without
     * the batch, so that those before a refused one are stored and the refused one is named (its position).
     */
    storeMany: async (inputs, { signal }) => {
      const messages = withMetadata.carry(inputs)
      try {
        return await confirmed(messages, signal, () => client.storeMessages(tenant, messages, { signal, requestId }))
      } catch (err) {
        if (!refused(err)) throw err
      }
      return oneByOne(messages, signal)
    },
    /** `POST /internal/messages/then-history`; refused as a whole: one at a time, then the read. */
    storeThenHistory: async (inputs, query, { signal }) => {
      const messages = withMetadata.carry(inputs)
      try {
        const answer = await confirmed(messages, signal, () =>
          client.storeThenHistory(tenant, messages, historyParams(query), { signal, requestId }),
        )
        return { stored: answer.messages, history: answer.history }
      } catch (err) {
        if (!refused(err)) throw err
      }
      const stored = await oneByOne(messages, signal)
      return { stored, history: await history(query, signal) }
    },
    history: (query, { signal }) => history(query, signal),
  }
}

/** The engine's history request as the client's query. */
function historyParams(query: HistoryRequest) {
  return {
    flow_id: query.flowId,
    session_id: query.sessionId,
    limit: query.limit,
    order: query.order,
    ...(query.sender !== undefined ? { sender: query.sender } : {}),
    ...(query.senderName !== undefined ? { sender_name: query.senderName } : {}),
  }
}

/**
 * A run's `session_metadata` on its way to the store: carried by the messages of every write until a write to
 * their session was confirmed, so that the store merges it into each session the run writes to in the
 * statement that stores the run's first message there (and again, harmlessly, if that write is retried).
 * A message replayed by id stores nothing again, and so merges nothing.
 */
function sessionMetadataCarrier(metadata: SessionMetadataPatch | null | undefined) {
  const done = new Set<string>()
  const key = (m: MessageInput) => `${m.flow_id}\u0000${m.session_id}`
  return {
    carry(messages: readonly MessageInput[]): MessageInput[] {
      if (!metadata) return [...messages]
      return messages.map((m) => (done.has(key(m)) ? m : { ...m, session_metadata: metadata }))
    },
    stored(messages: readonly MessageInput[]) {
      if (metadata) for (const m of messages) done.add(key(m))
    },
  }
}
