-- Flows belong to a tenant. The id is global (it is a flow's public identifier and
-- the default session ID), so an imported file's id is kept only if nobody has it.
CREATE TABLE flows (
  id            uuid PRIMARY KEY,
  tenant_id     text COLLATE "C" NOT NULL,
  name          text NOT NULL,
  description   text,
  -- The other way to name a flow in /api/v1/run/{flow_id_or_endpoint_name}; compared byte for byte.
  endpoint_name text COLLATE "C",
  -- Langflow's `data`: { nodes, edges, viewport }.
  data          jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- An endpoint name names one flow of a tenant (the run's lookup by name).
CREATE UNIQUE INDEX flows_tenant_endpoint_name ON flows (tenant_id, endpoint_name) WHERE endpoint_name IS NOT NULL;
-- A tenant's flows in creation order (the list).
CREATE INDEX flows_tenant_created ON flows (tenant_id, created_at, id);
