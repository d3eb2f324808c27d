import type { Queryable } from '@session-runtime/db'

/** What deletes and renames of sessions do to their metadata (in their transactions). */

/** A rename moves the metadata with the messages: from `oldId` to `newId` in each of `flows` (in a rename's transaction). */
export async function moveMetadata(tx: Queryable, tenant: string, oldId: string, newId: string, flows: string[]) {
  await tx.query(
    `UPDATE sessions n SET metadata = o.metadata FROM sessions o
     WHERE o.tenant_id = $1 AND o.session_id = $2 AND o.flow_id = ANY($4::uuid[])
       AND n.tenant_id = $1 AND n.flow_id = o.flow_id AND n.session_id = $3`,
    [tenant, oldId, newId, flows],
  )
  await clearMetadata(
    tx,
    tenant,
    flows.map((f) => ({ flow_id: f, session_id: oldId })),
  )
}

/** Deleted sessions forget their metadata too (their rows stay, for the versions: see sessions.ts). */
export async function clearMetadata(
  tx: Queryable,
  tenant: string,
  keys: ReadonlyArray<{ flow_id: string; session_id: string }>,
) {
  if (keys.length === 0) return
  await tx.query(
    `UPDATE sessions SET metadata = '{}'
     WHERE tenant_id = $1 AND (flow_id, session_id) IN (SELECT * FROM unnest($2::uuid[], $3::text[]))
       AND metadata <> '{}'`,
    [tenant, keys.map((k) => k.flow_id), keys.map((k) => k.session_id)],
  )
}
