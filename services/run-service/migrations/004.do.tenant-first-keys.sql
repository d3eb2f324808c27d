-- Every key starts with tenant_id, so the tables can be distributed by tenant (a sharded Postgres such as
-- Citus: a primary or unique key must contain the distribution column; docs/scaling.md).
-- `flows` was keyed by its id alone. A new flow still keeps its requested id only if no flow of any tenant
-- has it: flow-repository.ts looks the id up in `flows_id`, a plain (non-unique) index, before it inserts.
-- `example_flows_seeded` (tenant_id) and `unconfirmed_messages` (tenant_id, id) are tenant-first already,
-- as is the unique index `flows_tenant_endpoint_name` (tenant_id, endpoint_name).
ALTER TABLE flows DROP CONSTRAINT flows_pkey;
ALTER TABLE flows ADD CONSTRAINT flows_pkey PRIMARY KEY (tenant_id, id);
CREATE INDEX flows_id ON flows (id);
