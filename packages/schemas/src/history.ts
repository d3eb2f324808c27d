import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'

/** Most messages one history read returns. */
export const HISTORY_MAX = 1000

/**
 * Internal history read (message-store → Memory component): the latest `limit`
 * messages of (tenant, flow, session), error messages excluded.
 */
export const HistoryQuery = Type.Object(
  {
    flow_id: Uuid,
    session_id: SessionId,
    limit: Type.Integer({ minimum: 1, maximum: HISTORY_MAX, default: 100 }),
    order: Type.Union([Type.Literal('ASC'), Type.Literal('DESC')], { default: 'ASC' }),
    sender: Type.Optional(Type.String({ maxLength: 255 })),
    sender_name: Type.Optional(Type.String({ maxLength: 255 })),
  },
  { additionalProperties: false },
)
export type HistoryQuery = Static<typeof HistoryQuery>
