import { BatchedCalls, isUnavailableError, type Queryable } from '@session-runtime/db'
import { type SessionKey, type SessionTurnStore, sessionKeyId } from './session-runs.js'

/** The NOTIFY channel of released sessions; the payload names the schema and the session (`wakePayload`). */
export const SESSION_RELEASED_CHANNEL = 'runsvc_session_released'

/** The payload of a wake-up: JSON `[schema, tenant, flow, session]` (the schema: instances of other schemas ignore it). */
export const wakePayload = (schema: string, key: SessionKey): string =>
  JSON.stringify([schema, key.tenant, key.flowId, key.sessionId])

/** The session a wake-up payload names, if it is one of `schema`'s. */
export function parseWakePayload(schema: string, payload: string): SessionKey | undefined {
  try {
    const parsed: unknown = JSON.parse(payload)
    if (!Array.isArray(parsed) || parsed.length !== 4 || !parsed.every((part) => typeof part === 'string')) return
    const [inSchema, tenant, flowId, sessionId] = parsed as [string, string, string, string]
    return inSchema === schema ? { tenant, flowId, sessionId } : undefined
  } catch {
    return undefined
  }
}

/** A live instance: its lease has not run out. */
const live = (alias: string) =>
  `EXISTS (SELECT 1 FROM run_service_instances i WHERE i.id = ${alias}.instance_id AND i.expires_at > now())`

/** No live waiter of the session ($1–$3) ahead of `ticketBound` (SQL: a ticket, or none for any). */
const noLiveWaiterBefore = (ticketBound?: string) => `NOT EXISTS (
    SELECT 1 FROM session_run_waiters w
    WHERE w.tenant_id = $1 AND w.flow_id = $2::uuid AND w.session_id = $3
      ${ticketBound ? `AND w.ticket < ${ticketBound}` : ''} AND ${live('w')})`

/** Holds the session ($1–$3) with `ticket` for instance $4, unless a live holder has it (a dead one's is taken over). */
const holdSession = (ticket: string, condition: string) => `
  INSERT INTO session_run_holders AS h (tenant_id, flow_id, session_id, ticket, instance_id)
  SELECT $1, $2::uuid, $3, ${ticket}, $4::uuid
  WHERE ${condition}
  ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE
    SET ticket = excluded.ticket, instance_id = excluded.instance_id, since = now()
    WHERE NOT ${live('h')}
  RETURNING ticket`

// Take, for the runs of many sessions in one statement (the fast path of every run under load): each session that has no
// live holder and no live waiter is held with a new ticket; `n` numbers the keys ($1–$3 arrays, in order).
// Rows are inserted in key order, so two instances' batches lock shared keys in the same order.
const TAKE_MANY = `WITH wanted AS (
  SELECT k.tenant_id, k.flow_id, k.session_id, k.n
  FROM unnest($1::text[], $2::uuid[], $3::text[]) WITH ORDINALITY AS k(tenant_id, flow_id, session_id, n)
  WHERE NOT EXISTS (
    SELECT 1 FROM session_run_waiters w
    WHERE w.tenant_id = k.tenant_id AND w.flow_id = k.flow_id AND w.session_id = k.session_id AND ${live('w')})
), taken AS (
  INSERT INTO session_run_holders AS h (tenant_id, flow_id, session_id, ticket, instance_id)
  SELECT tenant_id, flow_id, session_id, nextval('session_run_tickets'), $4::uuid
  FROM wanted ORDER BY tenant_id, flow_id, session_id
  ON CONFLICT (tenant_id, flow_id, session_id) DO UPDATE
    SET ticket = excluded.ticket, instance_id = excluded.instance_id, since = now()
    WHERE NOT ${live('h')}
  RETURNING tenant_id, flow_id, session_id, ticket
)
SELECT wanted.n::integer AS n, taken.ticket::text AS ticket
FROM wanted JOIN taken USING (tenant_id, flow_id, session_id)`

const JOIN = `INSERT INTO session_run_waiters (tenant_id, flow_id, session_id, instance_id)
  VALUES ($1, $2::uuid, $3, $4::uuid) RETURNING ticket::text AS ticket`

// Promote: the waiter $5 holds the session if no live waiter is ahead of it and no live holder has it; its
// waiter row goes in the same statement.
const PROMOTE = `WITH promoted AS (${holdSession('$5::bigint', noLiveWaiterBefore('$5::bigint'))}
), dequeued AS (
  DELETE FROM session_run_waiters
  WHERE tenant_id = $1 AND flow_id = $2::uuid AND session_id = $3 AND ticket IN (SELECT ticket FROM promoted)
)
SELECT ticket::text AS ticket FROM promoted`

// Release and leave wake the session's waiters (of every instance) only if there are any: a NOTIFY takes a
// database-wide lock at commit. A waiter that joined too late to be seen here finds the session free (or
// waits for this statement's commit on the key) when it asks next.
const notifyWaiters = (except: string) => `
  SELECT pg_notify($5, $6) WHERE EXISTS (
    SELECT 1 FROM session_run_waiters
    WHERE tenant_id = $1 AND flow_id = $2::uuid AND session_id = $3 ${except})`

// Take and release for one session: the statements of a batch of one (cheaper than the batched form's
// unnest, join and CTEs: measured 200 against 320 µs of Postgres CPU per run when every batch held one).
const TAKE = `${holdSession("nextval('session_run_tickets')", noLiveWaiterBefore())}`

const RELEASE = `WITH released AS (
  DELETE FROM session_run_holders
  WHERE tenant_id = $1 AND flow_id = $2::uuid AND session_id = $3 AND ticket = $4::bigint
) ${notifyWaiters('')}`

// Release, for many sessions in one statement ($1–$4 arrays: the keys and their tickets; $5 the channel, $6
// the payloads): wakes the waiters of the released sessions that have any.
const RELEASE_MANY = `WITH k AS (
  SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[], $6::text[])
    AS k(tenant_id, flow_id, session_id, ticket, payload)
), released AS (
  DELETE FROM session_run_holders h USING k
  WHERE h.tenant_id = k.tenant_id AND h.flow_id = k.flow_id AND h.session_id = k.session_id AND h.ticket = k.ticket
)
SELECT pg_notify($5, k.payload) FROM k WHERE EXISTS (
  SELECT 1 FROM session_run_waiters w
  WHERE w.tenant_id = k.tenant_id AND w.flow_id = k.flow_id AND w.session_id = k.session_id)`

const LEAVE = `WITH gone AS (
  DELETE FROM session_run_waiters
  WHERE tenant_id = $1 AND flow_id = $2::uuid AND session_id = $3 AND ticket = $4::bigint
) ${notifyWaiters('AND ticket <> $4::bigint')}`

const HEARTBEAT = `INSERT INTO run_service_instances (id, expires_at)
  VALUES ($1::uuid, now() + $2::integer * interval '1 millisecond')
  ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`

// The sweep of rows left by instances that died: like the outbox sweep, a statement not scoped by tenant, on
// purpose (docs/scaling.md). The tables hold the runs in flight or waiting, so they stay small.
const SWEEP = `WITH dead_holders AS (
  DELETE FROM session_run_holders h WHERE NOT ${live('h')}
), dead_waiters AS (
  DELETE FROM session_run_waiters w WHERE NOT ${live('w')}
)
DELETE FROM run_service_instances WHERE expires_at < now() - interval '1 minute'`

// An instance that stops frees what it still holds (nothing, after a graceful stop) and ends its lease.
const STOP = `WITH holders AS (
  DELETE FROM session_run_holders WHERE instance_id = $1::uuid
), waiters AS (
  DELETE FROM session_run_waiters WHERE instance_id = $1::uuid
)
DELETE FROM run_service_instances WHERE id = $1::uuid`

export interface SessionRunRepository extends SessionTurnStore {
  /** Starts or renews this instance's lease for `leaseMs`. */
  heartbeat(leaseMs: number): Promise<void>
  /** Deletes the holders and waiters of instances whose lease ran out, and instances gone for a minute. */
  sweep(): Promise<void>
  /** Frees everything this instance holds or waits for and ends its lease. */
  stop(): Promise<void>
}

/**
 * How many take (and release) statements run at once; takes that arrive meanwhile go together in the next.
 * Two, not one: a statement that waits (on another instance's row lock, a deadlock check) holds up one slot.
 */
const TURN_STATEMENTS_IN_FLIGHT = 2
/** Most sessions one take or release statement carries. */
const TURN_BATCH = 256

/**
 * The per-session turns of the run-service's instances in its database (migration 005; the rules:
 * session-runs.ts). `instanceId` is this process's; `schema` goes into the wake-ups (several schemas, as in
 * tests, share one database's notifications).
 *
 * Takes and releases, one each per run, are coalesced (BatchedCalls): those of one event-loop turn (the runs
 * whose requests arrived in it, `gatherTurn`) and those that arrive while TURN_STATEMENTS_IN_FLIGHT statements
 * run go together in the next one, so a busy instance sends one statement for many runs; an idle one sends a
 * run's own statement at the end of its turn. Each session's outcome is the one its own statement would have
 * had: the statement decides every session on its own row. A coalesced statement that fails for another reason
 * than an unreachable database (a deadlock with another instance's batch, one bad key) is retried per session.
 */
export function sessionRunRepository(db: Queryable, instanceId: string, schema: string): SessionRunRepository {
  const keyParams = (key: SessionKey) => [key.tenant, key.flowId, key.sessionId]
  const notifyParams = (key: SessionKey) => [SESSION_RELEASED_CHANNEL, wakePayload(schema, key)]
  const batching = {
    maxInFlight: TURN_STATEMENTS_IN_FLIGHT,
    maxBatch: TURN_BATCH,
    retryAlone: (err: unknown) => !isUnavailableError(err),
    gatherTurn: true,
  }
  const columns = (keys: SessionKey[]) => [
    keys.map((k) => k.tenant),
    keys.map((k) => k.flowId),
    keys.map((k) => k.sessionId),
  ]
  const takes = new BatchedCalls<SessionKey, string | undefined>(
    (keys) =>
      inDistinctRounds(keys, sessionKeyId, async (round) => {
        const { rows } = await db.query<{ n: number; ticket: string }>(TAKE_MANY, [...columns(round), instanceId])
        const tickets: (string | undefined)[] = round.map(() => undefined)
        for (const row of rows) tickets[row.n - 1] = String(row.ticket)
        return tickets
      }),
    {
      ...batching,
      one: async (key) => {
        const { rows } = await db.query<{ ticket: string }>(TAKE, [...keyParams(key), instanceId])
        return rows[0]?.ticket === undefined ? undefined : String(rows[0].ticket)
      },
    },
  )
  const releases = new BatchedCalls<{ key: SessionKey; ticket: string }, void>(
    (held) =>
      inDistinctRounds(
        held,
        (h) => sessionKeyId(h.key),
        async (round) => {
          const keys = round.map((h) => h.key)
          await db.query(RELEASE_MANY, [
            ...columns(keys),
            round.map((h) => h.ticket),
            SESSION_RELEASED_CHANNEL,
            keys.map((key) => wakePayload(schema, key)),
          ])
          return round.map(() => undefined)
        },
      ),
    {
      ...batching,
      one: async ({ key, ticket }) => {
        await db.query(RELEASE, [...keyParams(key), ticket, ...notifyParams(key)])
      },
    },
  )
  return {
    take: (key) => takes.call(key),
    async join(key) {
      const { rows } = await db.query<{ ticket: string }>(JOIN, [...keyParams(key), instanceId])
      return String(rows[0]?.ticket)
    },
    async promote(key, ticket) {
      const { rows } = await db.query(PROMOTE, [...keyParams(key), instanceId, ticket])
      return rows.length > 0
    },
    async leave(key, ticket) {
      await db.query(LEAVE, [...keyParams(key), ticket, ...notifyParams(key)])
    },
    release: (key, ticket) => releases.call({ key, ticket }),
    async heartbeat(leaseMs) {
      await db.query(HEARTBEAT, [instanceId, leaseMs])
    },
    async sweep() {
      await db.query(SWEEP)
    },
    async stop() {
      await db.query(STOP, [instanceId])
    },
  }
}

/**
 * Runs `run` over `items` in rounds whose items have distinct keys, one round after another (one statement
 * can't insert or delete one session's row twice); the outputs in the items' order. The rule gives each
 * session one call at a time per process, so there is one round but for a caller that breaks it.
 */
async function inDistinctRounds<T, O>(items: T[], keyOf: (item: T) => string, run: (round: T[]) => Promise<O[]>) {
  const outputs: O[] = new Array(items.length)
  let left = items.map((item, index) => ({ item, index }))
  while (left.length > 0) {
    const seen = new Set<string>()
    const round: typeof left = []
    const later: typeof left = []
    for (const entry of left) {
      const key = keyOf(entry.item)
      if (seen.has(key)) later.push(entry)
      else {
        seen.add(key)
        round.push(entry)
      }
    }
    const answered = await run(round.map((entry) => entry.item))
    round.forEach((entry, i) => {
      outputs[entry.index] = answered[i] as O
    })
    left = later
  }
  return outputs
}
