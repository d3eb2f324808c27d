/**
 * Feedback on messages, as Langflow stores it: `properties.positive_feedback` true (thumbs up), false (thumbs
 * down), or null/absent (none). Sessions count theirs (`sessions.positive_feedback_count` and
 * `negative_feedback_count`, kept with message_count: insert.ts and sessions.ts).
 */

/**
 * A message (alias `m`) that has feedback. Written exactly as the partial indexes' predicate (migrations/008), so
 * that Postgres uses them: the messages with feedback are found without reading the others.
 */
export const FEEDBACK_GIVEN = `jsonb_typeof(m.properties -> 'positive_feedback') = 'boolean'`

/** Counts of `m`'s positive and negative feedback, as aggregate columns `positive` and `negative`. */
export const FEEDBACK_COUNTS = `count(*) FILTER (WHERE m.properties -> 'positive_feedback' = 'true') AS positive,
  count(*) FILTER (WHERE m.properties -> 'positive_feedback' = 'false') AS negative`
