import { type Static, Type } from '@sinclair/typebox'
import { SessionId, Uuid } from './session-id.js'

/** Most keys a session's metadata holds (after a merge). */
export const METADATA_MAX_KEYS = 16
/** Longest metadata value, in characters. */
export const METADATA_VALUE_MAX_LENGTH = 512
/** A metadata key: 1–64 characters of `A-Z a-z 0-9 _ . -`. */
export const METADATA_KEY_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'
/** The query-parameter prefix of a metadata filter: `?metadata.user_id=u-1`. */
export const METADATA_FILTER_PREFIX = 'metadata.'

const MetadataValue = Type.String({ maxLength: METADATA_VALUE_MAX_LENGTH })

/** A session's metadata as stored and answered: at most 16 string pairs. */
export const SessionMetadata = Type.Record(Type.String(), Type.String(), {
  description: `At most ${METADATA_MAX_KEYS} string pairs describing the session (e.g. whose it is)`,
})
export type SessionMetadata = Static<typeof SessionMetadata>

/**
 * A metadata merge: each key is set to its string, or removed with `null`. Keys 1–64 characters
 * `[A-Za-z0-9_.-]`, values at most 512 characters, at most 16 keys (the merged result too).
 */
export const SessionMetadataPatch = Type.Unsafe<Record<string, string | null>>({
  type: 'object',
  patternProperties: { [METADATA_KEY_PATTERN]: Type.Union([MetadataValue, Type.Null()]) },
  additionalProperties: false,
  maxProperties: METADATA_MAX_KEYS,
  description:
    `Merged into the session's metadata: a string sets the key, null removes it. Keys 1–64 characters ` +
    `[A-Za-z0-9_.-], values strings of at most ${METADATA_VALUE_MAX_LENGTH} characters, at most ` +
    `${METADATA_MAX_KEYS} keys after the merge.`,
})
export type SessionMetadataPatch = Static<typeof SessionMetadataPatch>

/** PATCH /api/v1/monitor/sessions/{session_id} body. */
export const SessionMetadataUpdate = Type.Object({ metadata: SessionMetadataPatch }, { additionalProperties: false })
export type SessionMetadataUpdate = Static<typeof SessionMetadataUpdate>

/** PATCH /api/v1/monitor/sessions/{session_id} and its export: the session is named by its flow. */
export const SessionInFlowQuery = Type.Object({ flow_id: Uuid }, { additionalProperties: false })
export type SessionInFlowQuery = Static<typeof SessionInFlowQuery>

export const SessionPathParams = Type.Object({ session_id: SessionId })

/**
 * `metadata.<key>=<value>` query parameters (all must match). Unknown parameters are dropped by the query
 * validation, so the routes check these keys themselves (`metadataFilters`) before it runs.
 */
export const MetadataFilterProperties = {
  '^metadata\\.[A-Za-z0-9_.-]{1,64}$': MetadataValue,
}

/** GET /api/v1/monitor/sessions/export and DELETE /api/v1/monitor/sessions: at least one metadata filter. */
export const MetadataFilterQuery = Type.Object(
  {},
  {
    patternProperties: MetadataFilterProperties,
    additionalProperties: false,
    description: 'One or more `metadata.<key>=<value>` parameters; a session matches when it has every pair.',
  },
)

/** DELETE /api/v1/monitor/sessions answer. */
export const EraseSessionsResponse = Type.Object({
  deleted_sessions: Type.Integer(),
  deleted_messages: Type.Integer(),
})
export type EraseSessionsResponse = Static<typeof EraseSessionsResponse>

/** A string Postgres can store in jsonb: no NUL, no lone surrogate (a pair is one code point with `u`). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what it refuses
const STORABLE = /^[^\u0000\ud800-\udfff]*$/u

export type MetadataFilterResult = { filters: Record<string, string> } | { error: string }

/**
 * The metadata filters of a query string (`metadata.<key>=<value>`), or what is wrong with them: a key that
 * breaks the key rules, a value given twice or longer than 512 characters.
 */
export function metadataFilters(query: Record<string, unknown>): MetadataFilterResult {
  const filters: Record<string, string> = {}
  const keyRule = new RegExp(METADATA_KEY_PATTERN)
  for (const [name, value] of Object.entries(query)) {
    if (name !== 'metadata' && !name.startsWith(METADATA_FILTER_PREFIX)) continue
    const key = name.slice(METADATA_FILTER_PREFIX.length)
    if (!name.startsWith(METADATA_FILTER_PREFIX) || !keyRule.test(key)) {
      return { error: `Invalid metadata filter "${name}": keys are 1–64 characters [A-Za-z0-9_.-]` }
    }
    if (typeof value !== 'string') return { error: `Metadata filter "${name}" given more than once` }
    if (!STORABLE.test(value)) {
      return { error: `Metadata filter "${name}" holds NUL or a lone UTF-16 surrogate, which cannot be stored` }
    }
    if (value.length > METADATA_VALUE_MAX_LENGTH) {
      return { error: `Metadata filter "${name}" is longer than ${METADATA_VALUE_MAX_LENGTH} characters` }
    }
    filters[key] = value
  }
  if (Object.keys(filters).length > METADATA_MAX_KEYS) {
    return { error: `At most ${METADATA_MAX_KEYS} metadata filters` }
  }
  return { filters }
}
