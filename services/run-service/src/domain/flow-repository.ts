import { randomUUID } from 'node:crypto'
import type { Queryable } from '@session-runtime/db'
import type { Flow } from '../schemas/flows.js'

/** No flow with this ID (or endpoint name) belongs to the tenant. */
export class FlowNotFoundError extends Error {
  constructor(readonly identifier: string) {
    super(`Flow identifier ${identifier} not found`)
    this.name = 'FlowNotFoundError'
  }
}

/** Another flow of the tenant already has this endpoint name. */
export class EndpointNameConflictError extends Error {
  constructor(readonly endpointName: string) {
    super(`Another flow of this tenant already has the endpoint_name ${endpointName}`)
    this.name = 'EndpointNameConflictError'
  }
}

export interface NewFlow {
  /** The ID to keep if nobody has it yet. */
  id?: string | undefined
  name: string
  description: string | null
  endpoint_name: string | null
  data: unknown
}

export interface FlowChanges {
  name?: string | undefined
  description?: string | null | undefined
  endpoint_name?: string | null | undefined
  data?: unknown
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(value: string): boolean {
  return UUID.test(value)
}

const ISO = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
const COLUMNS = `id::text AS id, name, description, endpoint_name, data,
  ${ISO('created_at')} AS created_at, ${ISO('updated_at')} AS updated_at`

/**
 * Stores a new flow. The given ID is kept unless any flow (of any tenant) has it;
 * then the flow gets a new one and `originalId` says which it asked for. The key is
 * (tenant_id, id); whether the ID is taken is looked up by id alone (index `flows_id`,
 * migrations/004), the one lookup here not scoped by tenant (docs/scaling.md).
 */
export async function createFlow(
  db: Queryable,
  tenant: string,
  input: NewFlow,
): Promise<{ flow: Flow; originalId?: string }> {
  const data = JSON.stringify(input.data)
  let id = input.id?.toLowerCase() ?? randomUUID()
  for (let attempt = 0; ; attempt++) {
    const { rows } = await withConflicts(input.endpoint_name, () =>
      db.query<Flow>(
        `INSERT INTO flows (id, tenant_id, name, description, endpoint_name, data)
         SELECT $1::uuid, $2, $3, $4, $5, $6::jsonb
         WHERE NOT EXISTS (SELECT 1 FROM flows WHERE id = $1::uuid)
         ON CONFLICT (tenant_id, id) DO NOTHING
         RETURNING ${COLUMNS}`,
        [id, tenant, input.name, input.description, input.endpoint_name, data],
      ),
    )
    const flow = rows[0]
    if (flow) return input.id && flow.id !== input.id.toLowerCase() ? { flow, originalId: input.id } : { flow }
    // Taken: a random UUID is (practically) never; a second collision would be a bug.
    if (attempt >= 2) throw new Error('could not find a free flow ID')
    id = randomUUID()
  }
}

/** The tenant's flows, oldest first. */
export async function listFlows(db: Queryable, tenant: string): Promise<Flow[]> {
  const { rows } = await db.query<Flow>(`SELECT ${COLUMNS} FROM flows WHERE tenant_id = $1 ORDER BY created_at, id`, [
    tenant,
  ])
  return rows
}

/** The tenant's flow with this ID; FlowNotFoundError for a missing or foreign one. */
export async function getFlow(db: Queryable, tenant: string, id: string): Promise<Flow> {
  const { rows } = await db.query<Flow>(`SELECT ${COLUMNS} FROM flows WHERE tenant_id = $1 AND id = $2`, [tenant, id])
  if (!rows[0]) throw new FlowNotFoundError(id)
  return rows[0]
}

/** The tenant's flow with this endpoint name; FlowNotFoundError if none. */
export async function getFlowByEndpointName(db: Queryable, tenant: string, endpointName: string): Promise<Flow> {
  const { rows } = await db.query<Flow>(`SELECT ${COLUMNS} FROM flows WHERE tenant_id = $1 AND endpoint_name = $2`, [
    tenant,
    endpointName,
  ])
  if (!rows[0]) throw new FlowNotFoundError(endpointName)
  return rows[0]
}

/**
 * The ID and row version (Postgres `xmin`, changed by every update) of flows named by ID or endpoint name, for
 * many runs in one statement (the flow's data is not read): `n` numbers the lookups ($1–$3 arrays, in order).
 */
const FIND_FLOW_VERSIONS = `SELECT k.n::integer AS n, f.id::text AS id, f.xmin::text AS version
  FROM unnest($1::text[], $2::uuid[], $3::text[]) WITH ORDINALITY AS k(tenant_id, flow_id, endpoint_name, n)
  CROSS JOIN LATERAL (
    SELECT id, xmin FROM flows WHERE k.flow_id IS NOT NULL AND tenant_id = k.tenant_id AND id = k.flow_id
    UNION ALL
    SELECT id, xmin FROM flows
    WHERE k.flow_id IS NULL AND tenant_id = k.tenant_id AND endpoint_name = k.endpoint_name
  ) f`

/** A run's flow reference: its tenant and the flow's ID or endpoint name. */
export interface FlowRef {
  tenant: string
  idOrEndpointName: string
}

/** The ID and row version of one referenced flow, undefined if the tenant has none (findFlowVersions for one). */
export async function findFlowVersion(
  db: Queryable,
  { tenant, idOrEndpointName }: FlowRef,
): Promise<{ id: string; version: string } | undefined> {
  const byId = isUuid(idOrEndpointName)
  const { rows } = await db.query<{ id: string; version: string }>(
    `SELECT id::text AS id, xmin::text AS version FROM flows WHERE tenant_id = $1 AND ${byId ? 'id = $2' : 'endpoint_name = $2'}`,
    [tenant, byId ? idOrEndpointName.toLowerCase() : idOrEndpointName],
  )
  return rows[0]
}

/** The ID and row version of each referenced flow, undefined where the tenant has none. */
export async function findFlowVersions(
  db: Queryable,
  refs: FlowRef[],
): Promise<({ id: string; version: string } | undefined)[]> {
  const byId = refs.map((ref) => isUuid(ref.idOrEndpointName))
  const { rows } = await db.query<{ n: number; id: string; version: string }>(FIND_FLOW_VERSIONS, [
    refs.map((ref) => ref.tenant),
    refs.map((ref, i) => (byId[i] ? ref.idOrEndpointName.toLowerCase() : null)),
    refs.map((ref, i) => (byId[i] ? null : ref.idOrEndpointName)),
  ])
  const found: ({ id: string; version: string } | undefined)[] = refs.map(() => undefined)
  for (const row of rows) found[row.n - 1] = { id: row.id, version: row.version }
  return found
}

/** The tenant's flow with this ID and its row version (see findFlowVersions); FlowNotFoundError if none. */
export async function getVersionedFlow(db: Queryable, tenant: string, id: string): Promise<Flow & { version: string }> {
  const { rows } = await db.query<Flow & { version: string }>(
    `SELECT ${COLUMNS}, xmin::text AS version FROM flows WHERE tenant_id = $1 AND id = $2`,
    [tenant, id],
  )
  if (!rows[0]) throw new FlowNotFoundError(id)
  return rows[0]
}

/** Changes the given fields only; FlowNotFoundError for a missing or foreign flow. */
export async function updateFlow(db: Queryable, tenant: string, id: string, changes: FlowChanges): Promise<Flow> {
  const sets: string[] = []
  const params: unknown[] = [tenant, id]
  const set = (column: string, value: unknown, cast = '') => {
    params.push(value)
    sets.push(`${column} = $${params.length}${cast}`)
  }
  if (changes.name !== undefined) set('name', changes.name)
  if (changes.description !== undefined) set('description', changes.description)
  if (changes.endpoint_name !== undefined) set('endpoint_name', changes.endpoint_name)
  if (changes.data !== undefined) set('data', JSON.stringify(changes.data), '::jsonb')
  if (sets.length === 0) return getFlow(db, tenant, id)
  const { rows } = await withConflicts(changes.endpoint_name, () =>
    db.query<Flow>(
      `UPDATE flows SET ${sets.join(', ')}, updated_at = now()
       WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      params,
    ),
  )
  if (!rows[0]) throw new FlowNotFoundError(id)
  return rows[0]
}

/** Deletes the tenant's flow; FlowNotFoundError for a missing or foreign one. */
export async function deleteFlow(db: Queryable, tenant: string, id: string): Promise<void> {
  const { rows } = await db.query('DELETE FROM flows WHERE tenant_id = $1 AND id = $2 RETURNING id', [tenant, id])
  if (!rows[0]) throw new FlowNotFoundError(id)
}

/** A unique violation of the tenant's endpoint names becomes EndpointNameConflictError. */
async function withConflicts<T>(endpointName: string | null | undefined, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    const e = err as { code?: string; constraint?: string; message?: string }
    if (
      endpointName &&
      e?.code === '23505' &&
      (e.constraint === 'flows_tenant_endpoint_name' || e.message?.includes('flows_tenant_endpoint_name'))
    ) {
      throw new EndpointNameConflictError(endpointName)
    }
    throw err
  }
}
