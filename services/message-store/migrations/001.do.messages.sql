-- Messages belong to (tenant, flow, session). Text columns that are compared or
-- sorted use the "C" collation: session IDs are compared byte for byte (spec §2).
CREATE TABLE messages (
  id             uuid PRIMARY KEY,
  tenant_id      text COLLATE "C" NOT NULL,
  flow_id        uuid NOT NULL,
  session_id     text COLLATE "C" NOT NULL,
  -- Tie-breaker for equal timestamps: drawn from one sequence, so it is
  -- monotonic within every session (and across sessions).
  seq            bigint GENERATED ALWAYS AS IDENTITY,
  ts             timestamptz NOT NULL DEFAULT clock_timestamp(),
  sender         text COLLATE "C" NOT NULL,
  sender_name    text COLLATE "C" NOT NULL,
  text           text NOT NULL,
  files          jsonb NOT NULL DEFAULT '[]',
  error          boolean NOT NULL DEFAULT false,
  edit           boolean NOT NULL DEFAULT false,
  properties     jsonb NOT NULL DEFAULT '{}',
  category       text NOT NULL DEFAULT 'message',
  content_blocks jsonb NOT NULL DEFAULT '[]',
  context_id     text NOT NULL DEFAULT ''
);

-- A session's history in order (the Memory component's hot path, monitor by session).
CREATE INDEX messages_session_history ON messages (tenant_id, flow_id, session_id, ts, seq);
-- A tenant's messages in order (monitor list without filters).
CREATE INDEX messages_tenant_time ON messages (tenant_id, ts, seq);

-- One row per (tenant, flow, session) that ever had a message. `version` changes
-- (from one sequence, always upwards) with every change to the session; the
-- history cache uses it to never serve an older state. A session whose messages
-- are all deleted keeps its row with message_count = 0, so versions stay monotonic.
CREATE SEQUENCE session_version_seq;

CREATE TABLE sessions (
  tenant_id     text COLLATE "C" NOT NULL,
  flow_id       uuid NOT NULL,
  session_id    text COLLATE "C" NOT NULL,
  message_count bigint NOT NULL,
  first_ts      timestamptz,
  last_ts       timestamptz,
  last_text     text,
  version       bigint NOT NULL,
  prev_version  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, flow_id, session_id)
);

-- A flow's sessions by last activity, and a tenant's (Playground session list).
CREATE INDEX sessions_flow_activity ON sessions (tenant_id, flow_id, last_ts DESC, session_id)
  WHERE message_count > 0;
CREATE INDEX sessions_tenant_activity ON sessions (tenant_id, last_ts DESC, session_id, flow_id)
  WHERE message_count > 0;

-- The API shape of a message (spec §4), built by Postgres as compact JSON text:
-- cheaper than turning rows into objects and serializing them in Node.
CREATE TYPE message_api AS (
  id uuid, flow_id uuid, session_id text, sender text, sender_name text, text text,
  "timestamp" text, files jsonb, error boolean, edit boolean, properties jsonb,
  category text, content_blocks jsonb, context_id text
);

CREATE FUNCTION message_json(m messages) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT row_to_json(ROW(
    m.id, m.flow_id, m.session_id, m.sender, m.sender_name, m.text,
    to_char(m.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    m.files, m.error, m.edit, m.properties, m.category, m.content_blocks, m.context_id
  )::message_api)::text
$$;

-- A fixed-width string that sorts like (ts, seq): microseconds since 1970 and seq.
CREATE FUNCTION message_sort_key(ts timestamptz, seq bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT lpad(((extract(epoch FROM ts) * 1000000)::bigint)::text, 17, '0') || lpad(seq::text, 19, '0')
$$;
