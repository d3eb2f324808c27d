import type { Database, Queryable } from '@session-runtime/db'
import type { SessionChange } from './changes.js'

/**
 * Retention: the idle limits (a tenant's default and per-flow overrides), the sweep lease, and the batch
 * statement that deletes expired sessions. Every statement is scoped by tenant, except reading every tenant's
 * rules for a sweep of all of them.
 */

/** One stored limit: the tenant's default (`flowId` null) or a flow's override. */
export interface RetentionRule {
  tenant: string
  flowId: string | null
  maxIdleSeconds: number
}

/** A tenant's limits: its default and its flow overrides (ordered by flow ID). */
export interface TenantRetention {
  defaultMaxIdleSeconds: number | null
  flows: Array<{ flowId: string; maxIdleSeconds: number }>
}

/** The tenant's default and overrides; only `flowId`'s override when it is given. */
export async function readRetention(db: Queryable, tenant: string, flowId?: string): Promise<TenantRetention> {
  const { rows } = await db.query<{ flow_id: string | null; max_idle_seconds: number }>(
    `SELECT flow_id, max_idle_seconds FROM retention
     WHERE tenant_id = $1 AND (flow_id IS NULL OR $2::uuid IS NULL OR flow_id = $2::uuid)
     ORDER BY flow_id NULLS FIRST`,
    [tenant, flowId ?? null],
  )
  const tenantRow = rows.find((r) => r.flow_id === null)
  return {
    defaultMaxIdleSeconds: tenantRow ? Number(tenantRow.max_idle_seconds) : null,
    flows: rows
      .filter((r) => r.flow_id !== null)
      .map((r) => ({ flowId: r.flow_id as string, maxIdleSeconds: Number(r.max_idle_seconds) })),
  }
}

/** Sets (or with null removes) the tenant's default (`flowId` undefined) or one flow's override. */
export async function writeRetention(
  db: Queryable,
  tenant: string,
  flowId: string | undefined,
  maxIdleSeconds: number | null,
): Promise<void> {
  if (maxIdleSeconds === null) {
    await db.query('DELETE FROM retention WHERE tenant_id = $1 AND flow_id IS NOT DISTINCT FROM $2::uuid', [
      tenant,
      flowId ?? null,
    ])
    return
  }
  await db.query(
    `INSERT INTO retention (tenant_id, flow_id, max_idle_seconds) VALUES ($1, $2::uuid, $3)
     ON CONFLICT ON CONSTRAINT retention_key DO UPDATE SET max_idle_seconds = excluded.max_idle_seconds, updated_at = now()`,
    [tenant, flowId ?? null, maxIdleSeconds],
  )
}

/** Every stored rule of one tenant, or of all tenants (`tenant` undefined). */
export async function listRetentionRules(db: Queryable, tenant?: string): Promise<RetentionRule[]> {
  const { rows } = await db.query<{ tenant_id: string; flow_id: string | null; max_idle_seconds: number }>(
    `SELECT tenant_id, flow_id, max_idle_seconds FROM retention
     WHERE $1::text IS NULL OR tenant_id = $1
     ORDER BY tenant_id, flow_id NULLS LAST`,
    [tenant ?? null],
  )
  return rows.map((r) => ({ tenant: r.tenant_id, flowId: r.flow_id, maxIdleSeconds: Number(r.max_idle_seconds) }))
}

/**
 * Takes the sweep lease for `holder` if it is free (no row, or its lease ran out); true when taken. A batch in
 * flight holds the lease row's lock (it renews the lease first), so the lease is never taken over mid-batch.
 */
export async function acquireSweepLease(db: Queryable, holder: string, leaseSeconds: number): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO retention_sweep_lease AS l (id, holder, expires_at)
     VALUES (true, $1::uuid, now() + make_interval(secs => $2))
     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE l.expires_at < now()
     RETURNING holder`,
    [holder, leaseSeconds],
  )
  return rows.length === 1
}

/** Gives the lease back (if `holder` still has it). */
export async function releaseSweepLease(db: Queryable, holder: string): Promise<void> {
  await db.query('DELETE FROM retention_sweep_lease WHERE holder = $1::uuid', [holder])
}

/**
 * The advisory lock every batch takes for its transaction: one key per schema (tests and deployments may share
 * a database under different schemas). Never waited for: a `false` means another sweep is in a batch right now
 * (its lease was taken over after it ran out), and this one stops.
 */
export async function tryBatchLock(tx: Queryable): Promise<boolean> {
  const { rows } = await tx.query<{ locked: boolean }>(
    `SELECT pg_try_advisory_xact_lock(${ADVISORY_CLASS}, hashtext(current_schema())) AS locked`,
  )
  return rows[0]?.locked === true
}
/** Extends `holder`'s lease (in the batch's transaction, which then holds the lease row); false if it is not held. */
export async function renewSweepLease(tx: Queryable, holder: string, leaseSeconds: number): Promise<boolean> {
  const lease = await tx.query(
    `UPDATE retention_sweep_lease SET expires_at = now() + make_interval(secs => $2)
     WHERE holder = $1::uuid RETURNING 1`,
    [holder, leaseSeconds],
  )
  return lease.rows.length === 1
}

/** The first key of the advisory lock: retention sweeps (an arbitrary constant, "RTN"). */
const ADVISORY_CLASS = 0x52544e

/** What one batch deleted, and the changes for the history cache. */
export interface SweepBatch {
  sessions: number
  messages: number
  changes: SessionChange[]
  /** The last activity of the newest session in the batch: where the next batch of the rule starts. */
  lastTs: string | null
}

/**
 * The sessions to delete for one rule, at most `$2`, oldest first from `$3` on (where the previous batch ended: the
 * index entries of the sessions it deleted are not scanned again), locked. The limit is read from `retention` by the statement
 * itself (a rule changed or removed since the sweep listed it is honoured), and `last_ts` is compared by it:
 * a row that a concurrent write updated since the statement began is checked again at its newest version
 * before it is locked (READ COMMITTED re-check of FOR UPDATE), so a session that just got a message is left
 * alone; rows locked by a write in progress are skipped (SKIP LOCKED), never waited for. Sessions kept with no
 * messages (message_count 0, left by a delete) have no last activity and are not touched.
 */
const FLOW_VICTIMS = `
  SELECT s.ctid AS tid, s.flow_id, s.session_id, s.last_ts FROM sessions s
  JOIN retention r ON r.tenant_id = $1 AND r.flow_id = $4::uuid
  WHERE s.tenant_id = $1 AND s.flow_id = $4::uuid AND s.message_count > 0
    AND s.last_ts < now() - make_interval(secs => r.max_idle_seconds) AND s.last_ts >= $3::timestamptz
  ORDER BY s.last_ts LIMIT $2
  FOR UPDATE OF s SKIP LOCKED`

/** As FLOW_VICTIMS, for the tenant's default: sessions of flows without an override of their own. */
const TENANT_VICTIMS = `
  SELECT s.ctid AS tid, s.flow_id, s.session_id, s.last_ts FROM sessions s
  JOIN retention r ON r.tenant_id = $1 AND r.flow_id IS NULL
  WHERE s.tenant_id = $1 AND s.message_count > 0
    AND s.last_ts < now() - make_interval(secs => r.max_idle_seconds) AND s.last_ts >= $3::timestamptz
    AND NOT EXISTS (SELECT 1 FROM retention o WHERE o.tenant_id = $1 AND o.flow_id = s.flow_id)
  ORDER BY s.last_ts LIMIT $2
  FOR UPDATE OF s SKIP LOCKED`

/**
 * One statement: lock the batch's sessions, delete their messages and their rows. A deleted session's row goes
 * too (a later message starts it afresh; versions come from one sequence, so they still only go up); a fresh
 * version per session invalidates its cached history.
 *
 * The plan is pinned to index lookups whatever the table size: each session's messages are found through
 * `messages_session_history` (the LATERAL subquery, kept from being flattened into a join by OFFSET 0) and
 * deleted by primary key (`id = ANY`); the sessions by the row addresses the locking scan returned (no one else
 * can update a row this statement locked, so its address holds until the commit). Joining the batch to the
 * tables instead let the planner hash-join it with a scan of all of `messages` (sub-second per batch at 370,000
 * messages, growing with the table).
 */
const sweepSql = (victims: string) => `
WITH v AS (${victims}),
dm AS (
  DELETE FROM messages m WHERE m.tenant_id = $1 AND m.id = ANY(ARRAY(
    SELECT x.id FROM v CROSS JOIN LATERAL (
      SELECT m2.id FROM messages m2
      WHERE m2.tenant_id = $1 AND m2.flow_id = v.flow_id AND m2.session_id = v.session_id OFFSET 0
    ) x))
  RETURNING 1
),
ds AS (
  DELETE FROM sessions s WHERE s.ctid = ANY(ARRAY(SELECT tid FROM v)) AND s.tenant_id = $1
  RETURNING s.flow_id, s.session_id
)
SELECT ds.flow_id, ds.session_id, nextval('session_version_seq') AS version, (SELECT count(*) FROM dm) AS messages,
  (SELECT max(last_ts) FROM v)::text AS last_ts
FROM ds`
const FLOW_SWEEP = sweepSql(FLOW_VICTIMS)
const TENANT_SWEEP = sweepSql(TENANT_VICTIMS)

/**
 * Deletes up to `limit` expired sessions of one rule, in one short transaction that first renews `holder`'s
 * lease. Null when the lease is no longer `holder`'s or another instance is in a batch (the sweep stops).
 */
export async function sweepBatch(
  db: Database,
  holder: string,
  leaseSeconds: number,
  rule: Pick<RetentionRule, 'tenant' | 'flowId'>,
  limit: number,
  after: string | null,
): Promise<SweepBatch | null> {
  return db.transaction(async (tx) => {
    if (!(await tryBatchLock(tx))) return null
    if (!(await renewSweepLease(tx, holder, leaseSeconds))) return null
    const params: unknown[] = [rule.tenant, limit, after ?? '-infinity']
    if (rule.flowId !== null) params.push(rule.flowId)
    const { rows } = await tx.query<{
      flow_id: string
      session_id: string
      version: string
      messages: string
      last_ts: string | null
    }>(rule.flowId === null ? TENANT_SWEEP : FLOW_SWEEP, params)
    return {
      sessions: rows.length,
      messages: Number(rows[0]?.messages ?? 0),
      changes: rows.map((r) => ({ flowId: r.flow_id, sessionId: r.session_id, version: Number(r.version) })),
      lastTs: rows[0]?.last_ts ?? null,
    }
  })
}
