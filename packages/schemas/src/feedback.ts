import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'

/** GET /api/v1/monitor/feedback: the messages with feedback of a flow (or one session), newest first. */
export const FeedbackQuery = Type.Object(
  {
    flow_id: Uuid,
    session_id: Type.Optional(SessionId),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  { additionalProperties: false },
)
export type FeedbackQuery = Static<typeof FeedbackQuery>
