import type { Database } from '@session-runtime/db'
import type { SearchQuery } from '@session-runtime/schemas'
import { containsPattern, parseSearch, phrasePattern, trigramSearchable } from '../search-terms.js'
import { listMessages, type MessageCondition, type Page } from './monitor-pages.js'

/**
 * GET /api/v1/monitor/messages/search: the tenant's messages whose text holds every word (and phrase) of the
 * query, newest first, paged like the message list (its cursors; migration 005 has the indexes).
 *
 * Every word is matched by `text ILIKE '%word%'`. A word with a run of 3 letters or digits is found through
 * the trigram index by that condition itself; any other word (1–2 characters, or symbols only) also names the
 * grams the text must have (`message_grams`, its index), or the gram '' of a text too long to have them all.
 * A phrase adds a regular expression over its words in order.
 */
export async function searchMessages(db: Database, tenant: string, q: SearchQuery): Promise<Page> {
  const conditions: MessageCondition[] = []
  for (const term of parseSearch(q.q)) {
    for (const word of term.words) {
      conditions.push(['m.text ILIKE ?', containsPattern(word)])
      if (!trigramSearchable(word)) {
        conditions.push([`(message_grams(m.text) @> message_search_grams(?) OR message_grams(m.text) @> '{""}')`, word])
      }
    }
    if (term.phrase) conditions.push(['m.text ~* ?', phrasePattern(term.words)])
  }
  const list = {
    flow_id: q.flow_id,
    session_id: q.session_id,
    sender: q.sender,
    order_by: 'timestamp',
    order: 'DESC',
    limit: q.limit,
    offset: 0,
    cursor: q.cursor,
  } as const
  // In a transaction: its statements are unnamed, so Postgres plans each one for its own words. A named
  // statement may get a generic plan after a few runs, which can't tell a rare word from a common one and
  // may walk the whole tenant's messages in time order for a rare word.
  return db.transaction((tx) => listMessages(tx, tenant, list, conditions))
}
