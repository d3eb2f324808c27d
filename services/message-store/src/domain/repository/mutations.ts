import type { Database } from '@session-runtime/db'
import type { MessageUpdate } from '@session-runtime/schemas'
import type { SessionChange } from './changes.js'
import { MessageNotFoundError } from './errors.js'
import { withRetry } from './retry.js'
import { ensureAndLockSessions, lockSessionKeys, lockSessions, refreshSessions, type SessionKey } from './sessions.js'

/** Mutations of messages: delete, mark failed, edit, and deleting a flow's messages. Each returns its session changes. */

/** DELETE /api/v1/monitor/messages: deletes the caller's messages among `ids`. */
export async function deleteMessages(db: Database, tenant: string, ids: string[]): Promise<SessionChange[]> {
  if (ids.length === 0) return []
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: keys } = await tx.query<SessionKey>(
        'SELECT DISTINCT flow_id, session_id FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[])',
        [tenant, ids],
      )
      if (keys.length === 0) return []
      await lockSessionKeys(tx, tenant, keys)
      const { rows: deleted } = await tx.query<SessionKey>(
        'DELETE FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[]) RETURNING flow_id, session_id',
        [tenant, ids],
      )
      return refreshSessions(tx, tenant, [...keys, ...deleted])
    }),
  )
}

/**
 * Marks the caller's messages among `ids` as failed: `error` true and `properties.state` "partial" (a run that
 * failed left them; see MessageRepository.writeFailed). Messages with `error` set are left as they are. Returns the
 * JSON of the messages it changed, by id, and the changes for the cache (they leave the Memory history).
 */
export async function markMessagesFailed(
  db: Database,
  tenant: string,
  ids: string[],
): Promise<{ updated: Map<string, string>; changes: SessionChange[] }> {
  const none = { updated: new Map<string, string>(), changes: [] }
  if (ids.length === 0) return none
  const unmarked = 'tenant_id = $1 AND id = ANY($2::uuid[]) AND NOT error'
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: keys } = await tx.query<SessionKey>(
        `SELECT DISTINCT flow_id, session_id FROM messages WHERE ${unmarked}`,
        [tenant, ids],
      )
      if (keys.length === 0) return none
      await lockSessionKeys(tx, tenant, keys)
      const { rows } = await tx.query<SessionKey & { id: string; json: string }>(
        `UPDATE messages m SET error = true, properties = properties || '{"state": "partial"}'::jsonb
         WHERE ${unmarked}
         RETURNING m.id, m.flow_id, m.session_id, message_json(m) AS json`,
        [tenant, ids],
      )
      const changes = await refreshSessions(tx, tenant, [...keys, ...rows])
      return { updated: new Map(rows.map((r) => [r.id, r.json])), changes }
    }),
  )
}

/** PUT /api/v1/monitor/messages/{id}: updates fields; a new text marks the message edited. */
export async function updateMessage(
  db: Database,
  tenant: string,
  id: string,
  update: MessageUpdate,
): Promise<{ json: string; changes: SessionChange[] }> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const { rows: found } = await tx.query<SessionKey>(
        'SELECT flow_id, session_id FROM messages WHERE tenant_id = $1 AND id = $2',
        [tenant, id],
      )
      const current = found[0]
      if (!current) throw new MessageNotFoundError('Message not found')
      const target = update.session_id ?? current.session_id
      await ensureAndLockSessions(tx, tenant, [current, { flow_id: current.flow_id, session_id: target }])
      const params: unknown[] = [tenant, id, current.flow_id, current.session_id]
      const sets: string[] = []
      const param = (value: unknown) => {
        params.push(value)
        return `$${params.length}`
      }
      if (update.text !== undefined) sets.push(`text = ${param(update.text)}`, 'edit = true')
      else if (update.edit !== undefined) sets.push(`edit = ${param(update.edit)}`)
      if (update.sender !== undefined) sets.push(`sender = ${param(update.sender)}`)
      if (update.sender_name !== undefined) sets.push(`sender_name = ${param(update.sender_name)}`)
      if (update.session_id !== undefined) sets.push(`session_id = ${param(update.session_id)}`)
      if (update.files !== undefined) sets.push(`files = ${param(JSON.stringify(update.files))}::jsonb`)
      if (update.error !== undefined) sets.push(`error = ${param(update.error)}`)
      let properties = update.properties !== undefined ? `${param(JSON.stringify(update.properties))}::jsonb` : ''
      // Langflow marks an edited message in its properties too.
      if (update.text !== undefined) properties = `jsonb_set(${properties || 'properties'}, '{edited}', 'true')`
      if (properties) sets.push(`properties = ${properties}`)
      if (sets.length === 0) sets.push('id = id')
      const { rows } = await tx.query<{ json: string }>(
        `UPDATE messages m SET ${sets.join(', ')}
         WHERE m.tenant_id = $1 AND m.id = $2 AND m.flow_id = $3 AND m.session_id = $4
         RETURNING message_json(m) AS json`,
        params,
      )
      const row = rows[0]
      // The message moved or vanished between the read and the lock: start over.
      if (!row) throw Object.assign(new Error('message changed concurrently'), { code: '40001' })
      const changes = await refreshSessions(tx, tenant, [current, { flow_id: current.flow_id, session_id: target }])
      return { json: row.json, changes }
    }),
  )
}

/** Deletes every message of a flow (used when a flow is deleted). */
export async function deleteFlowMessages(db: Database, tenant: string, flowId: string): Promise<SessionChange[]> {
  return withRetry(() =>
    db.transaction(async (tx) => {
      const locked = await lockSessions(tx, tenant, 'flow_id = $2', [flowId])
      await tx.query('DELETE FROM messages WHERE tenant_id = $1 AND flow_id = $2', [tenant, flowId])
      return refreshSessions(tx, tenant, locked)
    }),
  )
}
