// Concurrency through the gateway, on the three services as real processes (startProcessStack of packages/stack):
// 200 runs of the built-in Memory Echo flow at once, spread over 20 sessions, while other sessions of the
// same flow are renamed and deleted. Memory Echo stores the user message, reads the session's user
// messages back (the Memory component: the message-store's cached history) and stores a reply listing
// them, so every reply shows which history its run saw. Afterwards every session's history must be
// complete, ordered and free of duplicates, and the cached read (the message-store's internal history API:
// Redis or the in-process cache) must agree message for message with the uncached one (the monitor API:
// Postgres).

import { KEY_A, startProcessStack, TENANT_A } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import type { StoredMessage } from '../helpers/load.js'

const SESSIONS = 20
const RUNS = 200
const OTHER_SESSIONS = 10
const OTHER_RUNS = 3
/** Bound of every single request (milliseconds); the whole test is bounded by tap's own timeout. */
const REQUEST_TIMEOUT_MS = 60_000

const stack = await startProcessStack(t, {
  env: {
    // This test is about concurrency, not a slow Redis (tests/faults has its own for that): on a busy
    // 2-core machine a 250 ms command timeout could switch the cache off and leave nothing cached to compare.
    'message-store': { REDIS_COMMAND_TIMEOUT_MS: '2000' },
  },
})
// The test calls the message-store directly, as the run-service does.
const INTERNAL_TOKEN = stack.internalToken

type Message = StoredMessage
interface Answer<T> {
  status: number
  body: T
  text: string
}

async function request<T>(url: string, method: string, headers: Record<string, string>, body?: unknown) {
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, body: parsed as T, text } satisfies Answer<T>
}

/** Through the gateway, as tenant A. */
const api = <T = unknown>(method: string, path: string, body?: unknown) =>
  request<T>(`${stack.gatewayUrl}${path}`, method, { 'x-api-key': KEY_A }, body)

/** Straight to the message-store, as the run-service calls it. */
const store = <T = unknown>(path: string) =>
  request<T>(`${stack.services['message-store'].url}${path}`, 'GET', {
    'x-internal-token': INTERNAL_TOKEN,
    'x-tenant-id': TENANT_A,
  })

const enc = encodeURIComponent

/** Expects a 2xx; anything else fails with the answer in the message. */
function ok<T>(what: string, res: Answer<T>): T {
  if (res.status < 200 || res.status > 299) throw new Error(`${what}: ${res.status} ${res.text}`)
  return res.body
}

const PREFIX = 'You said: '
const HISTORY = '\nYour messages in this session so far:\n'

/** A Memory Echo reply split into what was said and the history the run's Memory node read. */
function parseReply(text: string): { said: string; listed: string[] } {
  if (!text.startsWith(PREFIX) || !text.includes(HISTORY)) throw new Error(`not a Memory Echo reply: ${text}`)
  const at = text.indexOf(HISTORY)
  const listed = text
    .slice(at + HISTORY.length)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (line.startsWith('- ') ? line.slice(2) : `(malformed line) ${line}`))
  return { said: text.slice(PREFIX.length, at), listed }
}

interface RunResult {
  session: string
  input: string
  reply: string
}

async function run(flowId: string, session: string, input: string): Promise<RunResult> {
  const res = await api<{ session_id: string; outputs: { outputs: { results: { message: { text: string } } }[] }[] }>(
    'POST',
    `/api/v1/run/${flowId}`,
    { input_value: input, session_id: session },
  )
  const body = ok(`run ${input}`, res)
  if (body.session_id !== session) throw new Error(`run ${input}: answered for session ${body.session_id}`)
  const reply = body.outputs[0]?.outputs[0]?.results.message.text
  if (typeof reply !== 'string') throw new Error(`run ${input}: no chat text in ${res.text}`)
  return { session, input, reply }
}

const monitorRead = async (flowId: string, session: string) =>
  ok(
    `monitor ${session}`,
    await api<Message[]>('GET', `/api/v1/monitor/messages?flow_id=${flowId}&session_id=${enc(session)}&limit=1000`),
  )
const cachedRead = async (flowId: string, session: string) =>
  ok(
    `history ${session}`,
    await store<Message[]>(`/internal/history?flow_id=${flowId}&session_id=${enc(session)}&limit=1000&order=ASC`),
  )

async function cacheHits(): Promise<number> {
  const res = await fetch(`${stack.services['message-store'].url}/metrics`, {
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const match = /^history_cache_hits_total(?:\{[^}]*\})? (\d+)/m.exec(await res.text())
  if (!match) throw new Error('no history_cache_hits_total in /metrics')
  return Number(match[1])
}

/** The first failure of a check over many items, or every item passed (one assertion, not thousands). */
function all<T>(t: Test, items: T[], check: (item: T) => string | undefined, message: string) {
  const failures = items.map(check).filter((f): f is string => f !== undefined)
  t.same(failures.slice(0, 5), [], `${message} (${items.length} checked, ${failures.length} failed)`)
}

const mainSessions = Array.from({ length: SESSIONS }, (_, i) => `conc-${i} session`)
const otherSessions = Array.from({ length: OTHER_SESSIONS }, (_, i) => `other-${i}`)
const renamed = otherSessions.slice(0, OTHER_SESSIONS / 2)
const deleted = otherSessions.slice(OTHER_SESSIONS / 2)
const newName = (session: string) => `${session} renamed`
const inputOf = (session: string, turn: number | string) => `${session} turn ${turn}`

let flowId = ''

/**
 * Every session's history read from the cache (the message-store's internal API) first, as the writes
 * before left the cache, then from Postgres (the monitor API), then from the cache again (now surely
 * cached: the first round filled what was missing); both cached rounds must equal the Postgres read,
 * message for message. Returns the Postgres reads.
 */
async function compareReads(t: Test, expectedLength: (session: string) => number) {
  const sessions = [...mainSessions, ...renamed.map(newName), ...renamed, ...deleted]
  const view = (list: Message[]) =>
    list.map((m) => ({ id: m.id, session_id: m.session_id, sender: m.sender, text: m.text, timestamp: m.timestamp }))
  const readAll = async (read: typeof cachedRead) => {
    const lists = new Map<string, Message[]>()
    for (const session of sessions) lists.set(session, await read(flowId, session))
    return lists
  }
  const hitsBefore = await cacheHits()
  const firstCached = await readAll(cachedRead)
  const hitsFirst = (await cacheHits()) - hitsBefore
  const uncached = await readAll(monitorRead)
  const hitsMid = await cacheHits()
  const secondCached = await readAll(cachedRead)
  const hitsSecond = (await cacheHits()) - hitsMid
  t.comment(`cache hits: ${hitsFirst} of ${sessions.length} first reads, ${hitsSecond} of ${sessions.length} second`)

  all(
    t,
    sessions,
    (session) => {
      const postgres = uncached.get(session) ?? []
      if (postgres.length !== expectedLength(session)) return `${session}: ${postgres.length} messages in Postgres`
      for (const [round, cached] of [
        ['first', firstCached.get(session) ?? []],
        ['second', secondCached.get(session) ?? []],
      ] as const) {
        if (JSON.stringify(view(cached)) !== JSON.stringify(view(postgres))) {
          return `${session}: ${round} cached read differs: ${JSON.stringify(view(cached))} vs ${JSON.stringify(view(postgres))}`
        }
        if (JSON.stringify(cached) !== JSON.stringify(postgres))
          return `${session}: ${round} cached read, other fields differ`
      }
      return undefined
    },
    'ids, order, senders, texts and timestamps: the same from the cache as from Postgres',
  )
  const nonEmpty = sessions.filter((s) => expectedLength(s) > 0).length
  t.ok(hitsSecond >= nonEmpty, `the second round was served by the cache (${hitsSecond} hits, ${nonEmpty} sessions)`)
  return uncached
}
const results: RunResult[] = []
/** Each main session's stored history after the concurrent runs. */
const stored = new Map<string, Message[]>()

t.test('setup: the Memory Echo flow, and other sessions with history, some read into the cache', async (t) => {
  const flows = ok('flows', await api<{ id: string; endpoint_name?: string }[]>('GET', '/api/v1/flows/'))
  flowId = flows.find((flow) => flow.endpoint_name === 'memory-echo')?.id ?? ''
  t.ok(flowId, 'every tenant has the built-in Memory Echo flow')
  await Promise.all(
    otherSessions.map(async (session) => {
      for (let turn = 1; turn <= OTHER_RUNS; turn++) await run(flowId, session, inputOf(session, turn))
      // Cached now: a rename or delete that left this entry in place would show up below.
      await cachedRead(flowId, session)
    }),
  )
  for (const session of otherSessions) {
    t.equal((await monitorRead(flowId, session)).length, OTHER_RUNS * 2, `${session}: stored`)
  }
})

t.test(`${RUNS} concurrent runs over ${SESSIONS} sessions, with renames and deletes of others`, async (t) => {
  const runs = Array.from({ length: RUNS }, (_, i) => {
    const session = mainSessions[i % SESSIONS] as string
    return { session, input: inputOf(session, Math.floor(i / SESSIONS) + 1) }
  })
  const mutations = [
    ...renamed.map(async (session) => {
      const res = await api<Message[]>(
        'PATCH',
        `/api/v1/monitor/messages/session/${enc(session)}?new_session_id=${enc(newName(session))}&flow_id=${flowId}`,
      )
      return `rename ${session}: ${res.status}${res.status === 200 ? ` ${res.body.length} messages` : ` ${res.text}`}`
    }),
    // One session deleted by itself, the others in one batch: both routes, concurrently.
    (async () => {
      const [first] = deleted
      const res = await api('DELETE', `/api/v1/monitor/messages/session/${enc(first as string)}?flow_id=${flowId}`)
      return `delete ${first}: ${res.status}`
    })(),
    (async () => {
      const res = await api<{ deleted_count: number }>('DELETE', '/api/v1/monitor/messages/sessions', deleted.slice(1))
      return `delete ${deleted.length - 1}: ${res.status} ${res.body?.deleted_count}`
    })(),
  ]
  // Everything in flight at once: half the runs, the renames and deletes, the other half.
  const half = RUNS / 2
  const started = [
    ...runs.slice(0, half).map((r) => run(flowId, r.session, r.input)),
    ...mutations,
    ...runs.slice(half).map((r) => run(flowId, r.session, r.input)),
  ]
  const settled = await Promise.allSettled(started)
  const failed = settled.filter((s) => s.status === 'rejected').map((s) => String(s.reason))
  t.same(failed, [], 'every run and every rename/delete answered 2xx')
  const done = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  results.push(...done.filter((d): d is RunResult => typeof d === 'object'))
  t.equal(results.length, RUNS, 'every run answered')
  t.same(
    done.filter((d) => typeof d === 'string'),
    [
      ...renamed.map((s) => `rename ${s}: 200 ${OTHER_RUNS * 2} messages`),
      `delete ${deleted[0]}: 204`,
      `delete ${deleted.length - 1}: 200 ${deleted.length - 1}`,
    ],
    'renames moved every message, deletes found every session',
  )

  all(
    t,
    results,
    (r) => {
      const { said, listed } = parseReply(r.reply)
      if (said !== r.input) return `${r.input}: reply says "${said}"`
      if (!listed.includes(r.input)) return `${r.input}: its own message is not in the history it read`
      const foreign = listed.find((text) => !text.startsWith(`${r.session} turn `))
      if (foreign !== undefined) return `${r.input}: history holds "${foreign}" of another session`
      if (new Set(listed).size !== listed.length) return `${r.input}: history has duplicates: ${listed.join(' | ')}`
      return undefined
    },
    "each reply lists its own input and only its own session's messages, once each",
  )
})

t.test('the cache agrees with Postgres as the concurrent writes, renames and deletes left it', async (t) => {
  const uncached = await compareReads(t, (session) =>
    mainSessions.includes(session)
      ? (RUNS / SESSIONS) * 2
      : renamed.includes(session) || deleted.includes(session)
        ? 0
        : OTHER_RUNS * 2,
  )
  for (const session of mainSessions) stored.set(session, uncached.get(session) ?? [])
})

t.test('every session history is complete, ordered and free of duplicates', async (t) => {
  const mine = (session: string) => results.filter((r) => r.session === session)
  all(
    t,
    mainSessions,
    (session) => {
      const list = stored.get(session) ?? []
      const runs = mine(session)
      if (list.length !== runs.length * 2) return `${session}: ${list.length} messages for ${runs.length} runs`
      if (new Set(list.map((m) => m.id)).size !== list.length) return `${session}: duplicate ids`
      const wrong = list.find((m) => m.session_id !== session || m.flow_id !== flowId || m.error)
      if (wrong) return `${session}: holds ${JSON.stringify(wrong)}`
      const users = list.filter((m) => m.sender === 'User').map((m) => m.text)
      const replies = list.filter((m) => m.sender === 'Machine').map((m) => m.text)
      if (JSON.stringify([...users].sort()) !== JSON.stringify(runs.map((r) => r.input).sort())) {
        return `${session}: user messages ${users.join(' | ')}`
      }
      if (JSON.stringify([...replies].sort()) !== JSON.stringify(runs.map((r) => r.reply).sort())) {
        return `${session}: replies stored are not the replies answered`
      }
      for (let i = 1; i < list.length; i++) {
        if (Date.parse((list[i] as Message).timestamp) < Date.parse((list[i - 1] as Message).timestamp)) {
          return `${session}: timestamps go back at ${i}`
        }
      }
      // Within a run, the question is stored before the answer.
      for (const r of runs) {
        const q = list.findIndex((m) => m.sender === 'User' && m.text === r.input)
        const a = list.findIndex((m) => m.sender === 'Machine' && m.text === r.reply)
        if (!(q < a)) return `${session}: the reply to "${r.input}" is stored before it`
      }
      // What each run's Memory node read is the stored order, with messages missing at most.
      for (const r of runs) {
        const { listed } = parseReply(r.reply)
        const positions = listed.map((text) => users.indexOf(text))
        if (positions.some((p, i) => p < 0 || (i > 0 && p <= (positions[i - 1] as number)))) {
          return `${session}: "${r.input}" read ${listed.join(' | ')}, stored order is ${users.join(' | ')}`
        }
      }
      return undefined
    },
    'each history: every question and reply once, questions before their replies, in one order every run saw',
  )

  const summaries = ok(
    'sessions',
    await api<{ session_id: string; message_count: number }[]>(
      'GET',
      `/api/v1/monitor/sessions?flow_id=${flowId}&limit=500`,
    ),
  )
  t.same(
    summaries.map((s) => `${s.session_id}: ${s.message_count}`).sort(),
    [
      ...mainSessions.map((s) => `${s}: ${(RUNS / SESSIONS) * 2}`),
      ...renamed.map((s) => `${newName(s)}: ${OTHER_RUNS * 2}`),
    ].sort(),
    'the session list: the run sessions and the renamed ones, with their counts; deleted and old names gone',
  )
})

t.test('one more run per session reads exactly the stored questions, in order', async (t) => {
  const finals = await Promise.all(mainSessions.map((session) => run(flowId, session, inputOf(session, 'last'))))
  all(
    t,
    finals,
    (r) => {
      const users = (stored.get(r.session) ?? []).filter((m) => m.sender === 'User').map((m) => m.text)
      const { listed } = parseReply(r.reply)
      const expected = [...users, r.input]
      return JSON.stringify(listed) === JSON.stringify(expected)
        ? undefined
        : `${r.session}: read ${listed.join(' | ')}, expected ${expected.join(' | ')}`
    },
    'each reply lists all earlier questions of its session and the current one, in stored order',
  )
  for (const session of renamed) {
    const r = await run(flowId, newName(session), `${newName(session)} continues`)
    t.same(
      parseReply(r.reply).listed,
      [...Array.from({ length: OTHER_RUNS }, (_, i) => inputOf(session, i + 1)), r.input],
      `${newName(session)}: the renamed session's history continues`,
    )
  }
  for (const session of deleted) {
    const r = await run(flowId, session, `${session} starts again`)
    t.same(parseReply(r.reply).listed, [r.input], `${session}: a deleted session starts empty`)
  }
})

t.test('cached and uncached reads agree message for message, after the last runs too', async (t) => {
  await compareReads(t, (session) =>
    mainSessions.includes(session)
      ? (RUNS / SESSIONS + 1) * 2
      : renamed.includes(session)
        ? 0
        : deleted.includes(session)
          ? 2
          : (OTHER_RUNS + 1) * 2,
  )
})
