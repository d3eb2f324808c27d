import type { Queryable } from '@session-runtime/db'
import type { MessageInput } from '@session-runtime/schemas'
import type { UnconfirmedMessage, UnconfirmedOutbox } from './unconfirmed-messages.js'

/** The run-service's table of unconfirmed message writes (migrations/003), as the settler's outbox. */
export function unconfirmedMessageRepository(db: Queryable): UnconfirmedOutbox {
  return {
    async add(entries) {
      if (entries.length === 0) return
      await db.query(
        `INSERT INTO unconfirmed_messages (tenant_id, id, message)
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])
         ON CONFLICT (tenant_id, id) DO NOTHING`,
        [entries.map((e) => e.tenant), entries.map((e) => e.message.id), entries.map((e) => JSON.stringify(e.message))],
      )
    },

    // The settler's sweep of the whole outbox, every tenant's entries oldest first: the one query of the
    // run-service not scoped by tenant, on purpose (sharded, it reads every shard; docs/scaling.md).
    async oldest(limit) {
      const { rows } = await db.query<{ tenant_id: string; message: string }>(
        'SELECT tenant_id, message FROM unconfirmed_messages ORDER BY recorded_at, tenant_id, id LIMIT $1',
        [limit],
      )
      return rows.map(
        (row): UnconfirmedMessage => ({
          tenant: row.tenant_id,
          message: JSON.parse(row.message) as MessageInput,
        }),
      )
    },

    async remove(entries) {
      if (entries.length === 0) return
      await db.query(
        `DELETE FROM unconfirmed_messages
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))`,
        [entries.map((e) => e.tenant), entries.map((e) => e.message.id)],
      )
    },
  }
}
