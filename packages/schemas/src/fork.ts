import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'

/** POST /api/v1/monitor/sessions/{session_id}/fork body. */
export const ForkSessionBody = Type.Object(
  {
    new_session_id: Type.Optional(
      Type.String({
        minLength: SessionId.minLength,
        maxLength: SessionId.maxLength,
        pattern: SessionId.pattern,
        description: "The fork's session ID (1–255 Unicode code points, no NUL); generated (a UUID) when absent",
      }),
    ),
    up_to_message_id: Type.Optional(
      Type.String({
        format: Uuid.format,
        description: 'Copy the messages up to and including this one (a message of the session); all when absent',
      }),
    ),
  },
  { additionalProperties: false },
)
export type ForkSessionBody = Static<typeof ForkSessionBody>
