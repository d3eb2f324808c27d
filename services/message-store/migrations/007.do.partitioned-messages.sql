-- `messages` partitioned by time (issue 14, point 3; docs/message-store.md, Partitions): one range partition per
-- calendar month (UTC) of `ts`, between a head partition (MINVALUE up to the oldest month) and a tail partition
-- (the month after the newest one up to MAXVALUE) that take a timestamp no month covers (a clock far off; the
-- service creates the months ahead: messages_ensure_partitions below). Not a DEFAULT partition: with one,
-- Postgres can't read the partitions in time order one after another (it merges them all, reading from each
-- before returning a row: a search for a word only recent messages hold read every older month's messages).
-- A month whose every session has expired under its retention is dropped whole by the sweeper
-- (domain/repository/partitions.ts) instead of being deleted row by row.
--
-- A unique key of a partitioned table must contain the partition key (ts), so (tenant_id, id) can no longer be
-- the key of `messages`. The ids live in `message_ids`, an unpartitioned ledger keyed (tenant_id, id): a write
-- inserts its ids there first (ON CONFLICT DO NOTHING) and stores only the messages whose id it inserted, so an id
-- is stored once whatever the concurrency (the unique index decides, as the primary key did). The ledger keeps
-- each message's ts: the ids of a dropped month are deleted by range (index message_ids_ts). A delete of messages
-- deletes their ids (trigger messages_forget_ids, one statement per DELETE, not per row).

ALTER TABLE messages RENAME TO messages_unpartitioned;
ALTER INDEX messages_session_history RENAME TO messages_unpartitioned_session_history;
ALTER INDEX messages_tenant_time RENAME TO messages_unpartitioned_tenant_time;
ALTER INDEX messages_flow_time RENAME TO messages_unpartitioned_flow_time;
ALTER INDEX messages_id RENAME TO messages_unpartitioned_id;
ALTER INDEX messages_text_trgm RENAME TO messages_unpartitioned_text_trgm;
ALTER INDEX messages_text_grams RENAME TO messages_unpartitioned_text_grams;
ALTER TABLE messages_unpartitioned RENAME CONSTRAINT messages_pkey TO messages_unpartitioned_pkey;

-- `seq` was an identity column; a partitioned table can't have one before Postgres 17: a sequence, going on from
-- where the identity was.
CREATE SEQUENCE messages_seq;
SELECT setval('messages_seq', coalesce((SELECT max(seq) FROM messages_unpartitioned), 0) + 1, false);

CREATE TABLE messages (
  id             uuid NOT NULL,
  tenant_id      text COLLATE "C" NOT NULL,
  flow_id        uuid NOT NULL,
  session_id     text COLLATE "C" NOT NULL,
  seq            bigint NOT NULL DEFAULT nextval('messages_seq'),
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
) PARTITION BY RANGE (ts);
ALTER SEQUENCE messages_seq OWNED BY messages.seq;

-- Head and tail meet at the first month to create (below); that function moves their bounds.
DO $$
DECLARE
  first_month timestamptz := greatest(
    date_trunc('month', coalesce((SELECT min(ts) FROM messages_unpartitioned), now()), 'UTC'),
    date_trunc('month', now(), 'UTC') - interval '24 months');
BEGIN
  EXECUTE format('CREATE TABLE messages_head PARTITION OF messages FOR VALUES FROM (MINVALUE) TO (%L)', first_month);
  EXECUTE format('CREATE TABLE messages_tail PARTITION OF messages FOR VALUES FROM (%L) TO (MAXVALUE)', first_month);
END
$$;

CREATE TABLE message_ids (
  tenant_id text COLLATE "C" NOT NULL,
  id        uuid NOT NULL,
  ts        timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
-- Who owns an id (a write naming another tenant's id is refused: insert.ts); the one lookup not by tenant.
CREATE INDEX message_ids_id ON message_ids (id);
-- The ids of a month, to forget them when the month is dropped.
CREATE INDEX message_ids_ts ON message_ids (ts);

-- Creates the missing monthly partitions (UTC) of [from_ts, to_ts) that no other range holds; returns how many.
CREATE FUNCTION messages_create_months(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  lo timestamptz := date_trunc('month', from_ts, 'UTC');
  hi timestamptz;
  part text;
  grams regclass;
  created integer := 0;
BEGIN
  WHILE lo < to_ts LOOP
    -- Whole months in UTC, whatever the session's time zone.
    hi := date_trunc('month', lo + interval '32 days', 'UTC');
    part := 'messages_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
    IF to_regclass(quote_ident(part)) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
      SELECT i.inhrelid::regclass INTO grams FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid
      WHERE i.inhparent = to_regclass('messages_text_grams') AND x.indrelid = to_regclass(quote_ident(part));
      IF grams IS NOT NULL THEN
        EXECUTE format('ALTER INDEX %s ALTER COLUMN 1 SET STATISTICS 1000', grams);
      END IF;
      created := created + 1;
    END IF;
    lo := hi;
  END LOOP;
  RETURN created;
END
$$;

-- Makes sure every month of [from_ts, to_ts) has its partition; returns how many it created. A month below the
-- head's bound or at or above the tail's is taken from it: the head (or tail) is detached, the months between
-- its bound and the new one are created, its rows of those months moved into them, and it is attached again with
-- its new bound. A missing month between (one the sweeper dropped) is created only when asked for. Idempotent,
-- and safe from several instances at once (a transaction-level advisory lock per schema).
CREATE FUNCTION messages_ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  lo timestamptz := date_trunc('month', from_ts, 'UTC');
  hi timestamptz := date_trunc('month', to_ts - interval '1 microsecond', 'UTC') + interval '32 days';
  head_hi timestamptz;
  tail_lo timestamptz;
  created integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(5263442, hashtext(current_schema()));
  hi := date_trunc('month', hi, 'UTC');
  SELECT btrim((regexp_match(pg_get_expr(relpartbound, oid), 'TO \((.*)\)$'))[1], '''')::timestamptz INTO head_hi
  FROM pg_class WHERE oid = to_regclass('messages_head');
  SELECT btrim((regexp_match(pg_get_expr(relpartbound, oid), 'FROM \((.*)\) TO'))[1], '''')::timestamptz INTO tail_lo
  FROM pg_class WHERE oid = to_regclass('messages_tail');
  IF lo < head_hi THEN
    EXECUTE 'ALTER TABLE messages DETACH PARTITION messages_head';
    created := created + messages_create_months(lo, head_hi);
    EXECUTE 'WITH moved AS (DELETE FROM messages_head WHERE ts >= $1 RETURNING *) INSERT INTO messages SELECT * FROM moved'
      USING lo;
    EXECUTE format('ALTER TABLE messages ATTACH PARTITION messages_head FOR VALUES FROM (MINVALUE) TO (%L)', lo);
    head_hi := lo;
  END IF;
  IF hi > tail_lo THEN
    EXECUTE 'ALTER TABLE messages DETACH PARTITION messages_tail';
    created := created + messages_create_months(tail_lo, hi);
    EXECUTE 'WITH moved AS (DELETE FROM messages_tail WHERE ts < $1 RETURNING *) INSERT INTO messages SELECT * FROM moved'
      USING hi;
    EXECUTE format('ALTER TABLE messages ATTACH PARTITION messages_tail FOR VALUES FROM (%L) TO (MAXVALUE)', hi);
    tail_lo := hi;
  END IF;
  created := created + messages_create_months(greatest(lo, head_hi), least(hi, tail_lo));
  RETURN created;
END
$$;

-- The indexes of migrations 001-005, on every partition (a partitioned index creates one per partition). The
-- key (tenant_id, id) stays as a plain index: lookups by id (replays, edits, deletes) within one tenant.
CREATE INDEX messages_tenant_id ON messages (tenant_id, id);
CREATE INDEX messages_session_history ON messages (tenant_id, flow_id, session_id, ts, seq);
CREATE INDEX messages_tenant_time ON messages (tenant_id, ts, seq);
CREATE INDEX messages_flow_time ON messages (tenant_id, flow_id, ts, seq);
DO $$
BEGIN
  EXECUTE format(
    'CREATE INDEX messages_text_trgm ON messages USING gin (text %I.gin_trgm_ops)',
    (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm')
  );
END
$$;
CREATE INDEX messages_text_grams ON messages USING gin (message_grams(text));
DO $$
DECLARE
  child regclass;
BEGIN
  FOR child IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'messages_text_grams'::regclass LOOP
    EXECUTE format('ALTER INDEX %s ALTER COLUMN 1 SET STATISTICS 1000', child);
  END LOOP;
END
$$;

-- The months from the oldest stored message's (at most 24 months back: older ones stay in the head partition) to
-- three months ahead; then the rows and their ids.
SELECT messages_ensure_partitions(
  btrim((regexp_match(pg_get_expr(relpartbound, oid), 'FROM \((.*)\) TO'))[1], '''')::timestamptz,
  now() + interval '3 months')
FROM pg_class WHERE oid = to_regclass('messages_tail');
INSERT INTO messages (id, tenant_id, flow_id, session_id, seq, ts, sender, sender_name, text, files, error, edit,
  properties, category, content_blocks, context_id)
SELECT id, tenant_id, flow_id, session_id, seq, ts, sender, sender_name, text, files, error, edit,
  properties, category, content_blocks, context_id
FROM messages_unpartitioned;
INSERT INTO message_ids (tenant_id, id, ts) SELECT tenant_id, id, ts FROM messages_unpartitioned;

-- message_json(messages) took the old table's row type; it goes with the table and comes back for the new one.
DROP TABLE messages_unpartitioned CASCADE;
CREATE FUNCTION message_json(m messages) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT row_to_json(ROW(
    m.id, m.flow_id, m.session_id, m.sender, m.sender_name, m.text,
    to_char(m.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    m.files, m.error, m.edit, m.properties, m.category, m.content_blocks, m.context_id
  )::message_api)::text
$$;

-- A DELETE of messages (any statement on the table, whatever partitions it reaches) forgets their ids, so a
-- deleted message's id can be stored again, as before. Dropping a partition fires no trigger: the sweeper deletes
-- that month's ids by range.
CREATE FUNCTION messages_forget_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM message_ids i USING gone g WHERE i.tenant_id = g.tenant_id AND i.id = g.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER messages_forget_ids AFTER DELETE ON messages
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION messages_forget_ids();

ANALYZE messages;
ANALYZE message_ids;
