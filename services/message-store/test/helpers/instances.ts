// Two message-store instances on one Postgres (and one cache, if any), and the checks the multi-instance
// tests run on them: every kind of change acknowledged by one instance and read by the other, and a checked
// write+read load.
import { randomUUID } from 'node:crypto'
import type { Test } from 'tap'
import { HistoryService } from '../../src/domain/history-service.js'
import {
  buildTestApp,
  dropSchema,
  history,
  internalHeaders,
  messageInput,
  store,
  type TestApp,
  uniqueName,
} from './app.js'

export const TENANT = 'tenant-a'
/** Reads of B after each acknowledged change (each compared with Postgres). */
const READS = 5

type Read = Awaited<ReturnType<typeof history>>
export const texts = (list: Read) => list.map((m) => m.text)

export interface Pair {
  a: TestApp
  b: TestApp
  /** Postgres itself, no cache: the truth. */
  truth: HistoryService
}

/** Instances A and B on one new schema and one key prefix, each with its own environment overrides. */
export async function pair(
  t: Test,
  envA: Record<string, string | undefined>,
  envB: Record<string, string | undefined>,
  cache: 'default' | 'memory' = 'default',
): Promise<Pair> {
  const schema = uniqueName('inst')
  const keyPrefix = `${uniqueName('inst')}:`
  t.teardown(() => dropSchema(schema))
  const a = await buildTestApp(t, { schema, keyPrefix, cache, env: envA })
  const b = await buildTestApp(t, { schema, keyPrefix, cache, env: envB })
  return { a, b, truth: new HistoryService(a.db, undefined, { maxEntries: 200, maxMessageBytes: 16_384 }) }
}

export async function call(app: TestApp, method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, headers: internalHeaders(TENANT), payload: payload as never })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

/** What each change does, through instance A; `sessions` are the sessions whose histories it changes. */
const CHANGES: Array<{
  name: string
  run(a: TestApp, s: { flow_id: string; ids: string[] }): Promise<unknown>
  sessions: string[]
}> = [
  {
    name: 'write',
    run: (a, { flow_id }) =>
      call(a, 'POST', '/internal/messages', messageInput({ flow_id, session_id: 's', text: 'm3' })),
    sessions: ['s'],
  },
  {
    name: 'edit',
    run: (a, { ids }) => call(a, 'PUT', `/api/v1/monitor/messages/${ids[0]}`, { text: 'm1 edited' }),
    sessions: ['s'],
  },
  {
    name: 'rename',
    run: (a, { flow_id }) =>
      call(a, 'PATCH', `/api/v1/monitor/messages/session/s?flow_id=${flow_id}&new_session_id=renamed`),
    sessions: ['s', 'renamed'],
  },
  {
    name: 'delete messages',
    run: (a, { ids }) => call(a, 'DELETE', '/api/v1/monitor/messages', [ids[1]]),
    sessions: ['s'],
  },
  {
    name: 'delete the session',
    run: (a, { flow_id }) => call(a, 'DELETE', `/api/v1/monitor/messages/session/s?flow_id=${flow_id}`),
    sessions: ['s'],
  },
  {
    name: 'delete the flow',
    run: (a, { flow_id }) => call(a, 'DELETE', `/internal/flows/${flow_id}/messages`),
    sessions: ['s'],
  },
  {
    name: 'failed-mark',
    run: (a, { flow_id, ids }) =>
      call(a, 'POST', '/internal/messages/failed', {
        messages: [messageInput({ id: ids[1], flow_id, session_id: 's', text: 'm2' })],
      }),
    sessions: ['s'],
  },
]

/**
 * For every change: B warms its cache of the session (a second read is a hit), A acknowledges the change,
 * then B reads READS times. Returns the number of B's reads that differed from Postgres.
 */
export async function everyChange(t: Test, p: Pair, what: string): Promise<number> {
  let stale = 0
  let reads = 0
  for (const change of CHANGES) {
    const flow_id = randomUUID()
    const stored = await call(p.b, 'POST', '/internal/messages/batch', {
      messages: [
        messageInput({ flow_id, session_id: 's', text: 'm1' }),
        messageInput({ flow_id, session_id: 's', sender: 'Machine', sender_name: 'AI', text: 'm2' }),
      ],
    })
    const ids = (stored.json() as Array<{ id: string }>).map((m) => m.id)
    // B reads the renamed session too, so that an empty history of it could be cached.
    for (const session of change.sessions) await history(p.b, TENANT, { flow_id, session_id: session })
    const warmed = p.b.repository.stats().hits
    for (const session of change.sessions) await history(p.b, TENANT, { flow_id, session_id: session })
    const started = Date.now()
    await change.run(p.a, { flow_id, ids })
    const ackMs = Date.now() - started
    t.ok(ackMs < 3000, `${what}, ${change.name}: acknowledged by A in ${ackMs} ms`)
    for (let i = 0; i < READS; i++) {
      for (const session of change.sessions) {
        const q = { flow_id, session_id: session, limit: 100, order: 'ASC' as const }
        const expected = JSON.parse(String(await p.truth.read(TENANT, q))) as Read
        const got = await history(p.b, TENANT, q)
        reads++
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          stale++
          t.fail(`${what}, ${change.name}: B served ${session} stale`, { got: texts(got), expected: texts(expected) })
        }
      }
    }
    // The warm-up reads were hits: B's cache was really in play.
    t.ok(p.b.repository.stats().hits > warmed, `${what}, ${change.name}: B's cache was warm`)
  }
  t.equal(stale, 0, `${what}: 0 stale of ${reads} reads through B`)
  return stale
}

/** Waits until both instances use their cache again. */
export async function waitUp(p: Pair) {
  const deadline = Date.now() + 10_000
  while (p.a.repository.cacheState().status !== 'up' || p.b.repository.cacheState().status !== 'up') {
    if (Date.now() > deadline) throw new Error('the instances did not use Redis again')
    await new Promise((r) => setTimeout(r, 20))
  }
}

export interface LoadOptions {
  workers: number
  sessionsPerWorker: number
  turns: number
  /** Padding of every answer (to fill a cache). */
  pad?: string
  /** Unchecked readers of random sessions besides, whose fills race with the writes. */
  racers?: number
  /** Called once, when half the turns are done (a fault to inject under load); the load goes on meanwhile. */
  midway?: () => Promise<void>
}

export interface LoadResult {
  flow_id: string
  reads: number
  stale: number
  /** Acknowledged message ids. */
  acknowledged: string[]
  /** Requests that failed (anything but a 2xx). */
  failures: string[]
}

/**
 * A checked write+read load: each worker owns sessions; per turn and session it stores a question and an answer
 * through one instance (alternating) and reads the session through the other, which must list exactly the
 * messages acknowledged for it so far.
 */
export async function checkedLoad(t: Test, p: Pair, o: LoadOptions): Promise<LoadResult> {
  const flow_id = randomUUID()
  const result: LoadResult = { flow_id, reads: 0, stale: 0, acknowledged: [], failures: [] }
  let turnsDone = 0
  let fault: Promise<void> | undefined
  const worker = async (w: number) => {
    const expected = new Map<string, string[]>()
    for (let turn = 0; turn < o.turns; turn++) {
      for (let s = 0; s < o.sessionsPerWorker; s++) {
        const session_id = `w${w}-s${s}`
        const list = expected.get(session_id) ?? []
        const question = `${session_id} q${turn}`
        const answer = `${session_id} a${turn} ${o.pad ?? ''}`
        const [writer, reader] = turn % 2 === 0 ? [p.a, p.b] : [p.b, p.a]
        const messages = [
          messageInput({ flow_id, session_id, text: question }),
          messageInput({ flow_id, session_id, sender: 'Machine', sender_name: 'AI', text: answer }),
        ]
        try {
          await store(writer, TENANT, messages)
        } catch (err) {
          result.failures.push(`write ${session_id} turn ${turn}: ${(err as Error).message}`)
          continue
        }
        result.acknowledged.push(...messages.map((m) => m.id))
        list.push(question, answer)
        expected.set(session_id, list)
        let got: string[]
        try {
          got = texts(await history(reader, TENANT, { flow_id, session_id, limit: 1000 }))
        } catch (err) {
          result.failures.push(`read ${session_id} turn ${turn}: ${(err as Error).message}`)
          continue
        }
        result.reads++
        if (JSON.stringify(got) !== JSON.stringify(list)) {
          result.stale++
          t.fail(`${session_id} turn ${turn}: stale read`, { got: got.length, expected: list.length })
        }
      }
      turnsDone++
      if (o.midway && !fault && turnsDone >= (o.workers * o.turns) / 2) fault = o.midway()
    }
  }
  let done = false
  const racer = async (i: number) => {
    while (!done) {
      const session_id = `w${Math.floor(Math.random() * o.workers)}-s${Math.floor(Math.random() * o.sessionsPerWorker)}`
      await history(i % 2 === 0 ? p.a : p.b, TENANT, { flow_id, session_id, limit: 1000 }).catch(() => {})
    }
  }
  const racers = Array.from({ length: o.racers ?? 0 }, (_, i) => racer(i))
  await Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w)))
  done = true
  await Promise.all(racers)
  await fault
  return result
}

/** How many rows each acknowledged id has in Postgres (each must have exactly one). */
export async function storedOnce(p: Pair, ids: string[]): Promise<{ missing: number; duplicated: number }> {
  const { rows } = await p.a.db.query<{ id: string; n: string }>(
    'SELECT id::text, count(*) AS n FROM messages WHERE id = ANY($1::uuid[]) GROUP BY id',
    [ids],
  )
  const counts = new Map(rows.map((r) => [r.id, Number(r.n)]))
  return {
    missing: ids.filter((id) => !counts.has(id)).length,
    duplicated: [...counts.values()].filter((n) => n > 1).length,
  }
}
