import { type Static, Type } from '@sinclair/typebox'
import { HistoryQuery } from './history.js'
import { SessionId, Uuid } from './session-id.js'
import { SessionMetadataPatch } from './session-metadata.js'

const FREE_TEXT_MAX = 1_000_000

export const MessageCategory = Type.String({
  maxLength: 64,
  description: 'message, error, warning or info',
})

/** A stored message, as every API returns it (spec §4). */
export const Message = Type.Object(
  {
    id: Uuid,
    flow_id: Uuid,
    session_id: Type.String(),
    sender: Type.String(),
    sender_name: Type.String(),
    text: Type.String(),
    timestamp: Type.String({ description: 'ISO-8601 UTC with microseconds; assigned once.' }),
    files: Type.Array(Type.String()),
    error: Type.Boolean(),
    edit: Type.Boolean(),
    properties: Type.Record(Type.String(), Type.Unknown()),
    category: Type.String(),
    content_blocks: Type.Array(Type.Unknown()),
    context_id: Type.String(),
  },
  { $id: 'Message' },
)
export type Message = Static<typeof Message>

/** What the run-service sends to store one message. `id` makes the write idempotent. */
export const MessageInput = Type.Object(
  {
    id: Uuid,
    flow_id: Uuid,
    session_id: SessionId,
    sender: Type.String({ maxLength: 255 }),
    sender_name: Type.String({ maxLength: 255 }),
    text: Type.String({ maxLength: FREE_TEXT_MAX }),
    files: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 100 })),
    error: Type.Optional(Type.Boolean()),
    edit: Type.Optional(Type.Boolean()),
    properties: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    category: Type.Optional(MessageCategory),
    content_blocks: Type.Optional(Type.Array(Type.Unknown())),
    context_id: Type.Optional(Type.String({ maxLength: 255 })),
    /** Merged into the session's metadata by the statement that stores the message (a run's `session_metadata`). */
    session_metadata: Type.Optional(SessionMetadataPatch),
  },
  { additionalProperties: false },
)
export type MessageInput = Static<typeof MessageInput>

/** Most messages one batch write may carry. */
export const BATCH_MAX = 1000

export const MessageBatch = Type.Object(
  { messages: Type.Array(MessageInput, { minItems: 1, maxItems: BATCH_MAX }) },
  { additionalProperties: false },
)
export type MessageBatch = Static<typeof MessageBatch>

/**
 * A turn's messages, then the history read that follows them (one call instead of two: a Memory component's
 * read after the messages its run emitted before it).
 */
export const MessagesThenHistory = Type.Object(
  {
    messages: Type.Array(MessageInput, { minItems: 1, maxItems: BATCH_MAX }),
    history: HistoryQuery,
  },
  { additionalProperties: false },
)
export type MessagesThenHistory = Static<typeof MessagesThenHistory>

/** The answer: the stored messages, in input order, and the history read after they were stored. */
export const StoredThenHistory = Type.Object({ messages: Type.Array(Message), history: Type.Array(Message) })
export type StoredThenHistory = Static<typeof StoredThenHistory>

/**
 * A message's feedback as Langflow stores it, in `properties.positive_feedback`: true (thumbs up), false
 * (thumbs down) or null (none).
 */
export const PositiveFeedback = Type.Union([Type.Boolean(), Type.Null()], {
  description: 'Feedback on the message: true (thumbs up), false (thumbs down) or null (none)',
})

/** The properties an edit sets (they replace the stored ones): free JSON, but `positive_feedback` is feedback. */
export const MessageUpdateProperties = Type.Object(
  { positive_feedback: Type.Optional(PositiveFeedback) },
  {
    additionalProperties: true,
    description:
      "Replaces the message's properties (Langflow's Properties). `positive_feedback`: true, false or null, else 422.",
  },
)

/** Fields a monitor edit (PUT /api/v1/monitor/messages/{id}) may change. */
export const MessageUpdate = Type.Object(
  {
    text: Type.Optional(Type.String({ maxLength: FREE_TEXT_MAX })),
    sender: Type.Optional(Type.String({ maxLength: 255 })),
    sender_name: Type.Optional(Type.String({ maxLength: 255 })),
    session_id: Type.Optional(SessionId),
    files: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 100 })),
    edit: Type.Optional(Type.Boolean()),
    error: Type.Optional(Type.Boolean()),
    properties: Type.Optional(MessageUpdateProperties),
  },
  { additionalProperties: false },
)
export type MessageUpdate = Static<typeof MessageUpdate>
