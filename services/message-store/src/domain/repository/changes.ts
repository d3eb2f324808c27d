/**
 * What a committed statement tells the history cache: the sessions it changed, at
 * their new versions, and for inserts the messages it appended.
 */

/** A session whose state changed, with its new version (for the history cache). */
export interface SessionChange {
  flowId: string
  sessionId: string
  version: number
}

/** Messages appended to one session by one write. */
export interface SessionAppend extends SessionChange {
  tenant: string
  /** The session's version just before this write (0: the session had no row). */
  prevVersion: number
  /** The appended non-error messages, in order. */
  entries: HistoryEntry[]
}

/** One message as the history cache keeps it. */
export interface HistoryEntry {
  json: string
  /** Sorts like (timestamp, seq); fixed width. */
  sortKey: string
  sender: string
  senderName: string
}

/** The columns of a message as the history cache keeps it (see HistoryEntry). */
export const HISTORY_COLUMNS = `message_json(m) AS json, message_sort_key(m.ts, m.seq) AS sort_key, m.sender, m.sender_name`
