-- Token usage (issue 15): each session's sums of the token usage its messages carry (Langflow's
-- `properties.usage` {input_tokens, output_tokens, total_tokens}, which the run-service records on model
-- replies), kept with the other summary columns (refreshSessions) and shown in the session summaries.
-- No backfill: no message stored before this carries a usage the run-service recorded; a session's next
-- change recomputes its sums anyway.
ALTER TABLE sessions
  ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0,
  ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0,
  ADD COLUMN total_tokens bigint NOT NULL DEFAULT 0;

-- One count of a message's `properties.usage` (`field`: input_tokens, output_tokens or total_tokens): a whole
-- number of at most 15 digits, else 0 (properties are free-form: anything else is no usage, never an error).
CREATE FUNCTION usage_tokens(properties jsonb, field text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(properties -> 'usage' -> field) = 'number'
    AND (properties -> 'usage' ->> field) ~ '^[0-9]{1,15}$'
    THEN (properties -> 'usage' ->> field)::bigint ELSE 0 END
$$;
