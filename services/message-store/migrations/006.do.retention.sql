-- Retention (docs/message-store.md, Retention): how long a session may stay idle (no new message) before the
-- sweeper deletes it. One row per tenant default (flow_id NULL) and per flow override. A flow's override beats
-- the tenant's default; without either, the flow's sessions are kept.
CREATE TABLE retention (
  tenant_id        text COLLATE "C" NOT NULL,
  flow_id          uuid,
  max_idle_seconds integer NOT NULL CHECK (max_idle_seconds >= 1),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT retention_key UNIQUE NULLS NOT DISTINCT (tenant_id, flow_id)
);

-- Who sweeps now: at most one sweep at a time over the whole database, whichever instance runs it. A sweep
-- takes the row when it is free or its lease ran out, renews it with each batch, and deletes it when done;
-- each batch also holds a transaction-level advisory lock (domain/repository/retention.ts).
CREATE TABLE retention_sweep_lease (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  holder     uuid NOT NULL,
  expires_at timestamptz NOT NULL
);
