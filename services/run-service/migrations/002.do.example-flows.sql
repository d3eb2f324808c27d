-- Tenants that have been given the built-in example flows (services/run-service/examples/), once each:
-- a tenant who deletes an example does not get it back.
CREATE TABLE example_flows_seeded (
  tenant_id text COLLATE "C" PRIMARY KEY,
  seeded_at timestamptz NOT NULL DEFAULT now()
);
