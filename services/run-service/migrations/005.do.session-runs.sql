-- One run at a time per session (issue 15; docs/run-service.md, "One run at a time per session";
-- src/domain/session-run-repository.ts owns the SQL).
--
-- UNLOGGED: every run inserts and deletes a holder row, each its own short transaction; without WAL those
-- commits do not wait for a WAL flush (fsync), which would otherwise be most of the rule's cost. The state is
-- short-lived: after a crash of Postgres (or on a promoted replica) the tables start empty, as if every hold and
-- queue place had been released — runs in flight across a database crash may then overlap once.

-- The run-service processes alive now: each one renews its row every RUN_SESSION_HEARTBEAT_MS (the lease:
-- RUN_SESSION_LEASE_MS) and deletes it when it stops. A holder or waiter whose instance's lease ran out counts
-- as gone. Not tenant data (like Postgrator's version table): under Citus, a reference table.
CREATE UNLOGGED TABLE run_service_instances (
  id         uuid PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

-- Tickets of holders and waiters: increasing in arrival order.
CREATE SEQUENCE session_run_tickets;

-- The run holding each session: at most one per (tenant, flow, session), so two holders are impossible
-- whatever the timing (the key decides, not a read).
CREATE UNLOGGED TABLE session_run_holders (
  tenant_id   text COLLATE "C" NOT NULL,
  flow_id     uuid NOT NULL,
  session_id  text COLLATE "C" NOT NULL,
  ticket      bigint NOT NULL,
  instance_id uuid NOT NULL,
  since       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, flow_id, session_id)
);

-- The runs waiting for a session (multitask_strategy enqueue), lowest ticket first.
CREATE UNLOGGED TABLE session_run_waiters (
  tenant_id   text COLLATE "C" NOT NULL,
  flow_id     uuid NOT NULL,
  session_id  text COLLATE "C" NOT NULL,
  ticket      bigint NOT NULL DEFAULT nextval('session_run_tickets'),
  instance_id uuid NOT NULL,
  PRIMARY KEY (tenant_id, flow_id, session_id, ticket)
);
