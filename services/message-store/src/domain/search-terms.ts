/**
 * A search query (GET /api/v1/monitor/messages/search `q`) as the words and phrases a message's text must
 * all contain. Nothing in a query is an operator: `&`, `|`, `!`, `:*`, `%`, `_`, backslashes and single
 * quotes are text to find. Only a pair of double quotes has a meaning: the words between them form a phrase,
 * found with those words in that order separated by any whitespace. An unpaired `"` is text.
 */
export interface SearchTerm {
  /** The words, in order (one for a plain word). */
  words: string[]
  /** Whether the words must appear as one phrase. */
  phrase: boolean
}

export class InvalidSearchError extends Error {}

/** Most distinct terms one query may hold (a 500-character query can't have many more). */
const MAX_TERMS = 64

const WHITESPACE = /\s+/u

export function parseSearch(q: string): SearchTerm[] {
  const terms: SearchTerm[] = []
  const plain = (text: string) => {
    for (const word of text.split(WHITESPACE)) if (word !== '') terms.push({ words: [word], phrase: false })
  }
  let rest = q
  for (;;) {
    const open = rest.indexOf('"')
    const close = open < 0 ? -1 : rest.indexOf('"', open + 1)
    if (close < 0) break
    plain(rest.slice(0, open))
    const words = rest
      .slice(open + 1, close)
      .split(WHITESPACE)
      .filter((w) => w !== '')
    if (words.length > 0) terms.push({ words, phrase: words.length > 1 })
    rest = rest.slice(close + 1)
  }
  plain(rest)
  const seen = new Set<string>()
  const unique = terms.filter((t) => {
    const key = JSON.stringify(t)
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
  if (unique.length === 0) throw new InvalidSearchError('The search query has no words to find')
  if (unique.length > MAX_TERMS) throw new InvalidSearchError(`A search query may hold at most ${MAX_TERMS} words`)
  return unique
}

/** A `LIKE`/`ILIKE` pattern that finds `word` anywhere: its `\`, `%` and `_` are escaped. */
export function containsPattern(word: string): string {
  return `%${word.replace(/[\\%_]/g, '\\$&')}%`
}

/**
 * A regular expression (Postgres ARE, matched against the lower-cased text after lower-casing it too) that
 * finds the words of a phrase in order, separated by whitespace:
 * every ASCII character that is not a letter or digit is escaped (a backslash before a non-alphanumeric
 * character always means the character itself); other characters have no special meaning there.
 */
export function phrasePattern(words: string[]): string {
  return words.map((w) => w.replace(/[^A-Za-z0-9\u0080-\u{10FFFF}]/gu, '\\$&')).join('[[:space:]]+')
}

/**
 * Whether the trigram index can find `word`: it holds a run of 3 letters or digits (pg_trgm takes its
 * trigrams from such runs). Others (1–2 characters, symbols) are found through the index of 1- and
 * 2-character substrings.
 */
export function trigramSearchable(word: string): boolean {
  return /[\p{L}\p{N}]{3}/u.test(word)
}
