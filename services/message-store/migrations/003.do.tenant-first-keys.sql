-- Every key starts with tenant_id, so the tables can be distributed by tenant (a sharded Postgres such as
-- Citus: a primary or unique key must contain the distribution column; docs/scaling.md).
-- `messages` was keyed by its id alone. The id stays globally unique in practice (a uuid) and a write that
-- names another tenant's id is still refused (409): insert.ts looks the id up in `messages_id`, a plain
-- (non-unique) index, before it inserts. `sessions` is keyed (tenant_id, flow_id, session_id) already.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (tenant_id, id);
CREATE INDEX messages_id ON messages (id);
