import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'

/** Longest search query, in characters. */
export const SEARCH_QUERY_MAX = 500

/** GET /api/v1/monitor/messages/search */
export const SearchQuery = Type.Object(
  {
    q: Type.String({
      minLength: 1,
      maxLength: SEARCH_QUERY_MAX,
      // Postgres text can't hold NUL
      pattern: '^[^\\u0000]*$',
      description:
        'Words to find, each as a case-insensitive substring of the text (any script, CJK too); "a quoted phrase" matches as a phrase. Every word must match; nothing in it is an operator.',
    }),
    flow_id: Type.Optional(Uuid),
    session_id: Type.Optional(SessionId),
    sender: Type.Optional(Type.String({ maxLength: 255 })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  { additionalProperties: false },
)
export type SearchQuery = Static<typeof SearchQuery>
