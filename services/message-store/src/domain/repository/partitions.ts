import { type Database, type Queryable, quoteIdent } from '@session-runtime/db'
import type { SessionChange } from './changes.js'
import { renewSweepLease, tryBatchLock } from './retention.js'
import { lockSessionKeys, refreshSessions, type SessionKey } from './sessions.js'

/**
 * The monthly partitions of `messages` (migrations/007; docs/message-store.md, Partitions): created ahead, and
 * dropped whole by the retention sweep once every session with messages in one has expired under its limit.
 * Partition maintenance is the one part of the store that reads every tenant's sessions at once (a partition holds
 * them all); it runs only in a sweep of every tenant, under the sweep's lease.
 */

/**
 * One range partition: the messages with `from <= ts < to` (ISO 8601, UTC; the head's `from` is -infinity, the
 * tail's `to` infinity).
 */
export interface MessagePartition {
  name: string
  /** A month, or the head (MINVALUE up to the oldest month) or the tail (after the newest month, to MAXVALUE). */
  kind: 'month' | 'head' | 'tail'
  from: string
  to: string
  /** Its whole range is before now: no new message goes there. */
  past: boolean
}

/** How long creating or dropping a partition waits for its table lock: every query on `messages` queues behind it. */
const DROP_LOCK_TIMEOUT = '1s'

/** How many months ahead of the current one have a partition (created on start and by every full sweep). */
export const PARTITION_MONTHS_AHEAD = 3

/**
 * Creates the partitions of the months from `from` (default: now) to `monthsAhead` months after now. Creating a
 * partition locks `messages` (ACCESS EXCLUSIVE, for the catalog change): it waits at most 1 s for that lock, so a
 * long query on `messages` never makes every other query queue behind it; it then fails, and the next sweep tries
 * again (the months ahead leave time for many).
 */
export async function ensurePartitions(
  db: Database,
  monthsAhead = PARTITION_MONTHS_AHEAD,
  from?: string,
): Promise<number> {
  return db.transaction(async (tx) => {
    await tx.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`)
    const { rows } = await tx.query<{ created: number }>(
      `SELECT messages_ensure_partitions(coalesce($1::timestamptz, now()), now() + make_interval(months => $2)) AS created`,
      [from ?? null, monthsAhead],
    )
    return Number(rows[0]?.created ?? 0)
  })
}

/** The partitions of `messages` in this schema, in time order (head, months, tail). */
export async function listPartitions(db: Queryable): Promise<MessagePartition[]> {
  const iso = (t: string) =>
    `CASE WHEN isfinite(${t}) THEN to_char(${t} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE ${t}::text END`
  const { rows } = await db.query<{ name: string; lo: string; hi: string; past: boolean }>(
    `SELECT p.name, ${iso('p.lo')} AS lo, ${iso('p.hi')} AS hi, p.hi <= now() AS past FROM (
       SELECT c.relname AS name,
         (CASE WHEN b[1] = 'MINVALUE' THEN '-infinity' ELSE btrim(b[1], '''') END)::timestamptz AS lo,
         (CASE WHEN b[2] = 'MAXVALUE' THEN 'infinity' ELSE btrim(b[2], '''') END)::timestamptz AS hi
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), $$FROM \\((.*)\\) TO \\((.*)\\)$$) b
       WHERE i.inhparent = 'messages'::regclass
     ) p ORDER BY p.lo`,
  )
  return rows.map((r) => ({
    name: r.name,
    kind: r.name === 'messages_head' ? 'head' : r.name === 'messages_tail' ? 'tail' : 'month',
    from: r.lo,
    to: r.hi,
    past: r.past,
  }))
}

/**
 * Whether some session with messages in [$1, $2) has not expired: its last activity is within its limit (the
 * flow's override, else the tenant's default), or no limit applies to it (kept forever). A session's messages all
 * lie between its first_ts and last_ts (every mutation keeps them so: insert.ts, sessions.ts refreshSessions), so
 * the sessions whose span meets the range are a superset of those with messages in it: never too few.
 */
const LIVE_SESSION_IN_RANGE = `
  SELECT EXISTS (
    SELECT 1 FROM sessions s
    LEFT JOIN retention f ON f.tenant_id = s.tenant_id AND f.flow_id = s.flow_id
    LEFT JOIN retention d ON d.tenant_id = s.tenant_id AND d.flow_id IS NULL
    WHERE s.message_count > 0 AND s.first_ts < $2::timestamptz AND s.last_ts >= $1::timestamptz
      AND (coalesce(f.max_idle_seconds, d.max_idle_seconds) IS NULL
        OR s.last_ts >= now() - make_interval(secs => coalesce(f.max_idle_seconds, d.max_idle_seconds)))
  ) AS live`

async function hasLiveSession(db: Queryable, part: MessagePartition): Promise<boolean> {
  const { rows } = await db.query<{ live: boolean }>(LIVE_SESSION_IN_RANGE, [part.from, part.to])
  return rows[0]?.live === true
}

/** What dropping one partition did. */
export type DropOutcome =
  | { kind: 'dropped'; messages: number }
  /** A session with messages in it has not expired: kept (its expired sessions are swept row by row). */
  | { kind: 'live' }
  /** The table lock was not granted within the lock timeout (a long query on `messages`): tried next sweep. */
  | { kind: 'busy' }
  /** The sweep lost its lease, or another instance is in a batch: the sweep stops. */
  | { kind: 'lost' }

/**
 * Drops `part` if every session with messages in it has expired. Checked once without a lock (the usual answer for
 * a partition with live sessions, at no cost to anyone), then again in the dropping transaction after it locked
 * `messages` (DROP of a partition takes an ACCESS EXCLUSIVE lock on the partitioned table anyway): no write,
 * edit or rename can reach a session between the check and the drop, and a retention rule changed since is
 * honoured. The lock is held for the check (one read of `sessions`) and the catalog change only.
 */
export async function dropPartitionIfExpired(
  db: Database,
  holder: string,
  leaseSeconds: number,
  part: MessagePartition,
): Promise<DropOutcome> {
  if (await hasLiveSession(db, part)) return { kind: 'live' }
  const table = quoteIdent(part.name)
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  const messages = Number(rows[0]?.n ?? 0)
  try {
    return await db.transaction(async (tx): Promise<DropOutcome> => {
      if (!(await tryBatchLock(tx)) || !(await renewSweepLease(tx, holder, leaseSeconds))) return { kind: 'lost' }
      await tx.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`)
      await tx.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE')
      if (await hasLiveSession(tx, part)) return { kind: 'live' }
      await tx.query(`DROP TABLE ${table}`)
      return { kind: 'dropped', messages }
    })
  } catch (err) {
    if ((err as { code?: string }).code === '55P03') return { kind: 'busy' }
    throw err
  }
}

/** Ids one statement forgets. */
const FORGET_BATCH = 10_000

/**
 * Deletes from the id ledger the ids of messages with `from <= ts < to` (a dropped month's: no partition holds
 * that range any more), in bounded batches; returns how many.
 */
export async function forgetIds(db: Queryable, from: string, to: string): Promise<number> {
  let forgotten = 0
  for (;;) {
    const { rows } = await db.query<{ n: string }>(
      `WITH d AS (
         DELETE FROM message_ids WHERE ctid = ANY(ARRAY(
           SELECT l.ctid FROM message_ids l
           WHERE l.ts < $2::timestamptz AND l.ts >= $1::timestamptz
           LIMIT $3))
         RETURNING 1)
       SELECT count(*) AS n FROM d`,
      [from, to, FORGET_BATCH],
    )
    const n = Number(rows[0]?.n ?? 0)
    forgotten += n
    if (n < FORGET_BATCH) return forgotten
  }
}

/**
 * Forgets the ids of every time range that no partition covers any more (between two partitions whose ranges do not
 * meet): the ranges of dropped months, including one whose ids a sweep that stopped midway left behind.
 */
export async function forgetDroppedIds(db: Queryable, parts: MessagePartition[]): Promise<number> {
  let forgotten = 0
  for (let i = 1; i < parts.length; i++) {
    const prev = parts[i - 1] as MessagePartition
    const next = parts[i] as MessagePartition
    if (prev.to !== next.from) forgotten += await forgetIds(db, prev.to, next.from)
  }
  return forgotten
}

/** Sessions one repair transaction refreshes. */
const REPAIR_BATCH = 100

/**
 * After a partition was dropped and the sweep deleted its expired sessions, a session whose span met the dropped
 * range may remain: one that a write reached after the drop (it got a message: live again, without its dropped
 * messages), or one the sweep skipped (locked by a write). Its summary (count, first and last activity, last text)
 * is recomputed from the messages it has now, and its version moves on (its cached history is dropped by the
 * caller). Returns the changes per tenant.
 */
export async function repairDroppedRange(
  db: Database,
  from: string,
  to: string,
): Promise<Array<{ tenant: string; changes: SessionChange[] }>> {
  const { rows } = await db.query<SessionKey & { tenant_id: string }>(
    `SELECT tenant_id, flow_id, session_id FROM sessions
     WHERE message_count > 0 AND first_ts < $2::timestamptz AND last_ts >= $1::timestamptz
     ORDER BY tenant_id, flow_id, session_id`,
    [from, to],
  )
  const out: Array<{ tenant: string; changes: SessionChange[] }> = []
  for (let i = 0; i < rows.length; i += REPAIR_BATCH) {
    const slice = rows.slice(i, i + REPAIR_BATCH)
    const tenants = [...new Set(slice.map((r) => r.tenant_id))]
    for (const tenant of tenants) {
      const keys = slice.filter((r) => r.tenant_id === tenant)
      const changes = await db.transaction(async (tx) => {
        await lockSessionKeys(tx, tenant, keys)
        return refreshSessions(tx, tenant, keys)
      })
      out.push({ tenant, changes })
    }
  }
  return out
}
