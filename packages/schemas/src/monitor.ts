import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'
import { MetadataFilterProperties, SessionMetadata } from './session-metadata.js'

export const ORDER_BY = ['timestamp', 'sender', 'sender_name', 'session_id'] as const

export const SortOrder = Type.Union([Type.Literal('ASC'), Type.Literal('DESC')], { default: 'ASC' })

/** GET /api/v1/monitor/messages */
export const MessagesQuery = Type.Object(
  {
    flow_id: Type.Optional(Uuid),
    session_id: Type.Optional(SessionId),
    sender: Type.Optional(Type.String({ maxLength: 255 })),
    sender_name: Type.Optional(Type.String({ maxLength: 255 })),
    order_by: Type.Union(
      ORDER_BY.map((name) => Type.Literal(name)),
      { default: 'timestamp' },
    ),
    order: SortOrder,
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    offset: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  { additionalProperties: false },
)
export type MessagesQuery = Static<typeof MessagesQuery>

/** GET /api/v1/monitor/messages/sessions */
export const SessionIdsQuery = Type.Object({ flow_id: Type.Optional(Uuid) }, { additionalProperties: false })
export type SessionIdsQuery = Static<typeof SessionIdsQuery>

/** GET /api/v1/monitor/sessions */
export const SessionsQuery = Type.Object(
  {
    flow_id: Type.Optional(Uuid),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  // `metadata.<key>=<value>` filters (checked by the route: see metadataFilters)
  { additionalProperties: false, patternProperties: MetadataFilterProperties },
)
export type SessionsQuery = Static<typeof SessionsQuery>

export const SessionSummary = Type.Object({
  session_id: Type.String(),
  flow_id: Uuid,
  message_count: Type.Integer(),
  first_timestamp: Type.String(),
  last_timestamp: Type.String(),
  last_text: Type.String(),
  metadata: SessionMetadata,
  positive_feedback_count: Type.Integer({
    description: 'Messages of the session with `properties.positive_feedback` true (thumbs up)',
  }),
  negative_feedback_count: Type.Integer({
    description: 'Messages of the session with `properties.positive_feedback` false (thumbs down)',
  }),
  /** The sums of its messages' `properties.usage` (Langflow's names; 0 without any). */
  usage: Type.Object({
    input_tokens: Type.Integer(),
    output_tokens: Type.Integer(),
    total_tokens: Type.Integer(),
  }),
})
export type SessionSummary = Static<typeof SessionSummary>

/** DELETE /api/v1/monitor/messages */
export const MessageIds = Type.Array(Uuid, { maxItems: 10_000 })

/** Most sessions one bulk delete may name. */
export const BULK_SESSIONS_MAX = 500

/** DELETE /api/v1/monitor/messages/sessions (the 500 limit is a 400, checked by the route). */
export const SessionIds = Type.Array(SessionId, { minItems: 1 })

export const DeleteSessionsResponse = Type.Object({
  message: Type.String(),
  deleted_count: Type.Integer(),
})

/** PATCH /api/v1/monitor/messages/session/{old} */
export const RenameSessionQuery = Type.Object(
  { new_session_id: SessionId, flow_id: Type.Optional(Uuid) },
  { additionalProperties: false },
)
export type RenameSessionQuery = Static<typeof RenameSessionQuery>

export const SessionParams = Type.Object({ session_id: SessionId })
export const RenameParams = Type.Object({ old_session_id: SessionId })
export const MessageIdParams = Type.Object({ id: Uuid })
