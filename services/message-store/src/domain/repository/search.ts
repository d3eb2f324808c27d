import type { Database } from '@session-runtime/db'
import type { SearchQuery } from '@session-runtime/schemas'
import { containsPattern, parseSearch, phrasePattern, trigramSearchable } from '../search-terms.js'
import { listMessages, type MessageCondition, newestFirst, type Page } from './monitor-pages.js'

/**
 * GET /api/v1/monitor/messages/search: the tenant's messages whose text holds every word (and phrase) of the
 * query, newest first, paged like the message list (its cursors; migration 005 has the indexes).
 *
 * Every word is matched as by `text ILIKE '%word%'`. A word with a run of 3 letters or digits is found through
 * the trigram index by that condition itself; any other word (1–2 characters, or symbols only) through the
 * grams index (gramCondition).
 * A phrase adds a regular expression over its words in order.
 */
export async function searchMessages(db: Database, tenant: string, q: SearchQuery): Promise<Page> {
  const conditions: MessageCondition[] = []
  for (const term of parseSearch(q.q)) {
    for (const word of term.words) {
      if (trigramSearchable(word)) conditions.push(['m.text ILIKE ?', containsPattern(word)])
      else conditions.push([gramCondition(), word])
    }
    // a check of the rows its words found (lower-cased: the trigram index can't take it, see gramCondition)
    if (term.phrase) conditions.push(['lower(m.text) ~ lower(?)', phrasePattern(term.words)])
  }
  const list = newestFirst(q)
  // In a transaction: its statements are unnamed, so Postgres plans each one for its own words. A named
  // statement may get a generic plan after a few runs, which can't tell a rare word from a common one and
  // may walk the whole tenant's messages in time order for a rare word.
  // No parallel workers: a page is at most 1,000 rows, and starting workers costs more than it saves (tens of
  // milliseconds on a busy machine).
  return db.transaction(async (tx) => {
    if (db.kind === 'postgres') await tx.query('SET LOCAL max_parallel_workers_per_gather = 0')
    return listMessages(tx, tenant, list, conditions)
  })
}

/**
 * A word the trigram index can't find, through the grams index: the text's grams must hold the word's (or the
 * marker '' of a text too long to have all its grams), and the lower-cased text must contain the lower-cased
 * word (ILIKE's matching). That check is `strpos(…) <> 0`, not `LIKE`: the trigram index can't take it (for a
 * word without trigrams that index would return every row: seconds at a million rows), Postgres runs it before
 * the costly `message_grams` when it walks another index, and it guesses it true for nearly every row, so the
 * rows are estimated from the grams' statistics alone (a guessed-rare `LIKE` made it sort every hit of a
 * common word).
 */
function gramCondition(): string {
  return `(strpos(lower(m.text), lower(?)) <> 0 AND (message_grams(m.text) @> message_search_grams(?) OR message_grams(m.text) @> '{""}'))`
}
