-- Full-text search over messages (GET /api/v1/monitor/messages/search; docs/message-store.md, Search).
-- Every word of a query matches as a case-insensitive substring: `text ILIKE '%word%'`. Two GIN indexes find
-- the candidate rows, so a search never reads the whole table:
--  * a trigram index (pg_trgm) serves words with 3 or more letters or digits in a row, in any script (CJK too);
--  * trigrams can't help a word of 1 or 2 characters (many CJK words), nor one of symbols ("&", ":*"): an index
--    over the 1- and 2-character substrings of the text (`message_grams`) serves those.

-- pg_trgm is a trusted extension (a database owner may create it). Test apps migrate their own schemas on
-- one database at once: a concurrent creation of the extension is no error.
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
  NULL;
END
$$;

-- The trigram index, on the schema that holds pg_trgm (public, unless it was installed elsewhere before).
DO $$
BEGIN
  EXECUTE format(
    'CREATE INDEX messages_text_trgm ON messages USING gin (text %I.gin_trgm_ops)',
    (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm')
  );
END
$$;

-- The 1- and 2-character substrings of a text, lower-cased (GIN keeps each distinct one once per row). Only
-- the first 4,096 characters count, so a long message costs no more to store than that; a longer text also has
-- the gram '' (which no search word has), so that searches take it as a candidate and check its whole text.
CREATE FUNCTION message_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT COST 50 AS $$
  SELECT string_to_array(l, NULL)
    || ARRAY(SELECT (regexp_matches(l, '..', 'g'))[1])
    || ARRAY(SELECT (regexp_matches(substr(l, 2), '..', 'g'))[1])
    || CASE WHEN length(t) > 4096 THEN '{""}'::text[] ELSE '{}'::text[] END
  FROM (SELECT lower(left(t, 4096)) AS l) a
$$;

-- The grams a text must have to contain a search word: the word itself if it has 1 or 2 characters, else
-- each of its 2-character substrings.
CREATE FUNCTION message_search_grams(word text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT CASE WHEN length(w) <= 2 THEN ARRAY[w]
    ELSE ARRAY(SELECT DISTINCT substr(w, i, 2) FROM generate_series(1, length(w) - 1) AS i) END
  FROM (SELECT lower(word) AS w) a
$$;

CREATE INDEX messages_text_grams ON messages USING gin (message_grams(text));
-- Statistics of many grams (the most common 10,000 rather than 1,000), so that Postgres knows a gram that is in
-- none or few of the messages for rare: else it guesses it common, walks the tenant's messages newest first
-- looking for 50 hits and, for a word in none of them, reads them all (1 s at a million). The price: ANALYZE
-- computes message_grams for a sample of 300,000 rows (about 10 s of CPU) instead of 30,000.
ALTER INDEX messages_text_grams ALTER COLUMN 1 SET STATISTICS 1000;
