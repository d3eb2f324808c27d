-- Feedback (issue 15): a message's `properties.positive_feedback` is true (thumbs up), false (thumbs down) or
-- null/absent (none), as Langflow stores it. Only columns on `sessions` and indexes here: the migration depends on
-- no other change to the tables' layout (7 may repartition `messages`; indexes follow a partitioned table).

-- Per-session counts of the feedback given, kept by the repository with message_count (insert.ts adds a write's,
-- sessions.ts recomputes them with every edit, delete, rename or fork; a retention sweep deletes the row).
ALTER TABLE sessions
  ADD COLUMN positive_feedback_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN negative_feedback_count bigint NOT NULL DEFAULT 0;

-- The messages with feedback, which are few: GET /api/v1/monitor/feedback newest first (by flow, and by session),
-- and the recount of a session's feedback. The predicate is written the same way in the queries
-- (domain/repository/feedback.ts, FEEDBACK_GIVEN), so that Postgres can use these partial indexes.
CREATE INDEX messages_feedback_flow ON messages (tenant_id, flow_id, ts, seq)
  WHERE jsonb_typeof(properties -> 'positive_feedback') = 'boolean';
CREATE INDEX messages_feedback_session ON messages (tenant_id, flow_id, session_id, ts, seq)
  WHERE jsonb_typeof(properties -> 'positive_feedback') = 'boolean';

-- Sessions that had feedback before this migration.
UPDATE sessions s SET positive_feedback_count = f.positive, negative_feedback_count = f.negative
FROM (
  SELECT tenant_id, flow_id, session_id,
    count(*) FILTER (WHERE properties -> 'positive_feedback' = 'true') AS positive,
    count(*) FILTER (WHERE properties -> 'positive_feedback' = 'false') AS negative
  FROM messages WHERE jsonb_typeof(properties -> 'positive_feedback') = 'boolean'
  GROUP BY tenant_id, flow_id, session_id
) f
WHERE s.tenant_id = f.tenant_id AND s.flow_id = f.flow_id AND s.session_id = f.session_id;
