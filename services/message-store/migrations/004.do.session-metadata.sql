-- Session metadata (issue 14): at most 16 string pairs per session, set by
-- PATCH /api/v1/monitor/sessions/{id} or a run's `session_metadata`, and matched by
-- `?metadata.<key>=<value>` filters (`metadata @> '{"key":"value"}'`, GIN-indexed).
ALTER TABLE sessions ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
CREATE INDEX sessions_metadata ON sessions USING gin (metadata jsonb_path_ops);

-- `metadata` merged with `patch` (a key set to null is removed); NULL when the result would hold more than
-- 16 keys (the caller keeps the old metadata, or refuses the change) or when `patch` is NULL.
CREATE FUNCTION session_metadata_merge(metadata jsonb, patch jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN (SELECT count(*) FROM jsonb_object_keys(m.merged)) <= 16 THEN m.merged END
  FROM (SELECT jsonb_strip_nulls(metadata || patch) AS merged) m
$$;
