// Checks of a load's acknowledged turns against what the store holds (the run benches).

/** One acknowledged run: the question it sent and the session it named. */
export interface Turn {
  question: string
  session: string
}

/** A stored message as the monitor API lists it (only what the check reads). */
export interface ListedMessage {
  text: string
  sender: string
}

/**
 * What is wrong with one session's acknowledged turns, given every message of the session oldest first:
 * `lost` questions not stored, `duplicated` ones stored more than once, `unanswered` ones not followed by the
 * flow's reply (a Machine message containing the question). Only user messages starting with `prefix` (this
 * load's questions) are looked at; stored questions that were never acknowledged (cut off when the load
 * stopped) are fine.
 */
export function checkSession(
  messages: readonly ListedMessage[],
  acknowledged: ReadonlySet<string>,
  prefix: string,
): { lost: number; duplicated: number; unanswered: number } {
  const seen = new Map<string, number>()
  let unanswered = 0
  messages.forEach((m, i) => {
    if (m.sender !== 'User' || !m.text.startsWith(prefix)) return
    const times = (seen.get(m.text) ?? 0) + 1
    seen.set(m.text, times)
    const reply = messages[i + 1]
    if (times === 1 && acknowledged.has(m.text) && !(reply?.sender === 'Machine' && reply.text.includes(m.text))) {
      unanswered++
    }
  })
  let lost = 0
  let duplicated = 0
  for (const q of acknowledged) {
    const times = seen.get(q) ?? 0
    if (times === 0) lost++
    else if (times > 1) duplicated++
  }
  return { lost, duplicated, unanswered }
}

/** The acknowledged turns by session: the questions each session must hold. */
export function bySession(turns: readonly Turn[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const t of turns) {
    const set = out.get(t.session) ?? new Set<string>()
    set.add(t.question)
    out.set(t.session, set)
  }
  return out
}
