// Redis faults under a load of mixed reads and writes, against a redis-server this file starts itself
// (a child process on a free port) and the real message-store app (in-process, `inject`), on the Postgres
// of TEST_DATABASE_URL (else embedded PGlite).
//
// Sessions are driven concurrently, each by one worker holding a model of what its histories must be:
// writes (single and batch), edits, message deletes, session renames and session deletes, and reads of
// the cached history (/internal/history) and of the uncached monitor list (/api/v1/monitor/messages),
// each compared with the model. Redis is then SIGKILLed (restarted empty), SIGSTOPped (a network
// partition: connections stay open, nothing answers; then SIGCONT), or killed after a SAVE (restarted
// with its old data). Checked: no request fails, every read during and after the outage equals the
// model (nothing stale), every request during the outage finishes within a bound derived from
// REDIS_COMMAND_TIMEOUT_MS, and after recovery the cache is used again and agrees with Postgres.
// services/message-store/test/redis-outage.test.ts covers the same faults one request at a time.
import { randomUUID } from 'node:crypto'
import { hasRedisServer, startRedisServer, waitFor } from '@session-runtime/stack'
import t, { type Test } from 'tap'
import {
  buildTestApp,
  internalHeaders,
  storageKind,
  type TestApp,
} from '../../services/message-store/test/helpers/app.js'

const TENANT = 'tenant-a'
/** REDIS_COMMAND_TIMEOUT_MS of the app under test. */
const COMMAND_TIMEOUT_MS = 200
/**
 * Bound of any request while Redis is down or frozen: one command timeout, plus a generous margin for
 * Postgres and a busy 2-core CI machine. A bound that catches a request hanging on Redis, not a benchmark.
 */
const LATENCY_BOUND_MS = COMMAND_TIMEOUT_MS + 2800
/** Any single request that takes longer than this is reported as hung (and the loop moves on). */
const REQUEST_TIMEOUT_MS = 15_000
const SESSIONS = 8
/** Operations per session in each phase. */
const OPS = { before: 12, during: 25, after: 12 } as const

// ---- the load -------------------------------------------------------------------------------------

/** A tiny seeded PRNG (mulberry32), so a failing run can be replayed with its seed. */
function prng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface ModelMessage {
  id: string
  text: string
}

/** One session as its worker knows it; `names` are every session ID it had (renames leave old ones empty). */
interface Session {
  flow_id: string
  name: string
  names: string[]
  messages: ModelMessage[]
  written: number
}

type Op = 'write' | 'batch' | 'read' | 'list' | 'edit' | 'deleteMessage' | 'rename' | 'deleteSession'

interface Stats {
  requests: number
  latencies: number[]
  byOp: Record<string, number>
  /** Requests that answered an unexpected status, or timed out. */
  failures: string[]
  /** Reads whose content differed from the model. */
  stale: string[]
}

const newStats = (): Stats => ({ requests: 0, latencies: [], byOp: {}, failures: [], stale: [] })

const show = (list: ModelMessage[]) => list.map((m) => m.text).join(' | ')
const same = (a: ModelMessage[], b: ModelMessage[]) =>
  a.length === b.length && a.every((m, i) => m.id === b[i]?.id && m.text === b[i]?.text)

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

class Load {
  readonly sessions: Session[]
  private readonly random: () => number

  constructor(
    private readonly app: TestApp,
    readonly seed: number,
  ) {
    this.random = prng(seed)
    const flows = [randomUUID(), randomUUID()]
    this.sessions = Array.from({ length: SESSIONS }, (_, i) => {
      const name = `s${i}`
      return { flow_id: flows[i % 2] as string, name, names: [name], messages: [], written: 0 }
    })
  }

  /** One request, timed and classified; answers the parsed body, or undefined on a failure. */
  private async request(
    stats: Stats,
    op: Op,
    opts: {
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
      url: string
      query?: Record<string, string>
      payload?: unknown
    },
    expected: number[],
  ): Promise<unknown> {
    stats.requests++
    stats.byOp[op] = (stats.byOp[op] ?? 0) + 1
    const started = performance.now()
    try {
      const res = await withTimeout(
        this.app.inject({ ...opts, headers: internalHeaders(TENANT) } as never),
        REQUEST_TIMEOUT_MS,
        op,
      )
      stats.latencies.push(performance.now() - started)
      if (!expected.includes(res.statusCode)) {
        stats.failures.push(`${op}: ${res.statusCode} ${res.body.slice(0, 200)}`)
        return undefined
      }
      return res.body ? res.json() : null
    } catch (err) {
      stats.latencies.push(performance.now() - started)
      stats.failures.push(`${op}: ${(err as Error).message}`)
      return undefined
    }
  }

  /** The cached read (the Memory component's), compared with the model. */
  async readCached(stats: Stats, s: Session, name = s.name, expected = s.messages) {
    const body = (await this.request(
      stats,
      'read',
      { method: 'GET', url: '/internal/history', query: { flow_id: s.flow_id, session_id: name, limit: '1000' } },
      [200],
    )) as ModelMessage[] | undefined
    if (!body) return
    const got = body.map(({ id, text }) => ({ id, text }))
    if (!same(got, expected)) stats.stale.push(`history ${name}: got [${show(got)}], expected [${show(expected)}]`)
  }

  /** The uncached read (monitor list, straight from Postgres), compared with the model. */
  async readUncached(stats: Stats, s: Session, name = s.name, expected = s.messages) {
    const body = (await this.request(
      stats,
      'list',
      {
        method: 'GET',
        url: '/api/v1/monitor/messages',
        query: { flow_id: s.flow_id, session_id: name, order_by: 'timestamp', order: 'ASC', limit: '1000' },
      },
      [200],
    )) as ModelMessage[] | undefined
    if (!body) return
    const got = body.map(({ id, text }) => ({ id, text }))
    if (!same(got, expected)) stats.stale.push(`monitor ${name}: got [${show(got)}], expected [${show(expected)}]`)
  }

  private message(s: Session) {
    s.written++
    return {
      id: randomUUID(),
      flow_id: s.flow_id,
      session_id: s.name,
      sender: s.written % 2 ? 'User' : 'Machine',
      sender_name: s.written % 2 ? 'User' : 'AI',
      text: `${s.name}#${s.written}`,
    }
  }

  private pick(): Op {
    const r = this.random()
    if (r < 0.22) return 'write'
    if (r < 0.32) return 'batch'
    if (r < 0.57) return 'read'
    if (r < 0.72) return 'list'
    if (r < 0.82) return 'edit'
    if (r < 0.9) return 'deleteMessage'
    if (r < 0.96) return 'rename'
    return 'deleteSession'
  }

  private async step(stats: Stats, s: Session, round: number) {
    let op = this.pick()
    // Edits, deletes and renames need messages: write instead.
    if (s.messages.length === 0 && ['edit', 'deleteMessage', 'rename', 'deleteSession'].includes(op)) op = 'write'
    switch (op) {
      case 'write': {
        const m = this.message(s)
        const body = await this.request(stats, op, { method: 'POST', url: '/internal/messages', payload: m }, [201])
        if (body) s.messages.push({ id: m.id, text: m.text })
        return
      }
      case 'batch': {
        const list = [this.message(s), this.message(s), this.message(s)]
        const body = await this.request(
          stats,
          op,
          { method: 'POST', url: '/internal/messages/batch', payload: { messages: list } },
          [201],
        )
        if (body) s.messages.push(...list.map((m) => ({ id: m.id, text: m.text })))
        return
      }
      case 'read':
        return this.readCached(stats, s)
      case 'list':
        return this.readUncached(stats, s)
      case 'edit': {
        const target = s.messages[Math.floor(this.random() * s.messages.length)] as ModelMessage
        const text = `${target.text.split(' edited')[0]} edited@${round}`
        const body = await this.request(
          stats,
          op,
          { method: 'PUT', url: `/api/v1/monitor/messages/${target.id}`, payload: { text } },
          [200],
        )
        if (body) target.text = text
        return
      }
      case 'deleteMessage': {
        const target = s.messages[Math.floor(this.random() * s.messages.length)] as ModelMessage
        const body = await this.request(
          stats,
          op,
          { method: 'DELETE', url: '/api/v1/monitor/messages', payload: [target.id] },
          [204],
        )
        if (body !== undefined) s.messages = s.messages.filter((m) => m.id !== target.id)
        return
      }
      case 'rename': {
        const next = `${s.names[0]}-r${s.names.length}`
        const body = await this.request(
          stats,
          op,
          {
            method: 'PATCH',
            url: `/api/v1/monitor/messages/session/${encodeURIComponent(s.name)}`,
            query: { new_session_id: next, flow_id: s.flow_id },
          },
          [200],
        )
        if (body) {
          s.name = next
          s.names.push(next)
        }
        return
      }
      case 'deleteSession': {
        const body = await this.request(
          stats,
          op,
          {
            method: 'DELETE',
            url: `/api/v1/monitor/messages/session/${encodeURIComponent(s.name)}`,
            query: { flow_id: s.flow_id },
          },
          [204],
        )
        if (body !== undefined) s.messages = []
        return
      }
    }
  }

  /** Every session runs `ops` operations, one at a time; the sessions run concurrently. */
  async run(ops: number, round: number): Promise<Stats> {
    const stats = newStats()
    await Promise.all(
      this.sessions.map(async (s) => {
        for (let i = 0; i < ops; i++) await this.step(stats, s, round)
      }),
    )
    return stats
  }

  /**
   * Every session under every name it ever had: the cached read twice (a fill, then a hit) and the
   * uncached read, each equal to the model (old names: empty).
   */
  async verifyAll(): Promise<Stats> {
    const stats = newStats()
    for (const s of this.sessions) {
      for (const name of s.names) {
        const expected = name === s.name ? s.messages : []
        await this.readCached(stats, s, name, expected)
        await this.readCached(stats, s, name, expected)
        await this.readUncached(stats, s, name, expected)
      }
    }
    return stats
  }
}

function summary(stats: Stats) {
  const sorted = stats.latencies.slice().sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return {
    requests: stats.requests,
    p50: Math.round(at(0.5)),
    p99: Math.round(at(0.99)),
    max: Math.round(sorted.at(-1) ?? 0),
  }
}

/** No failure, nothing stale: the first few of each, for a readable failure. */
function checkPhase(t: Test, phase: string, stats: Stats) {
  t.ok(stats.requests > 0, `${phase}: ${stats.requests} requests (${JSON.stringify(stats.byOp)})`)
  t.same(stats.failures.slice(0, 5), [], `${phase}: no request failed (${stats.failures.length} failures)`)
  t.same(
    stats.stale.slice(0, 5),
    [],
    `${phase}: every read equals the acknowledged state (${stats.stale.length} differ)`,
  )
}

type Fault = 'kill' | 'freeze' | 'snapshot'

async function scenario(t: Test, fault: Fault) {
  const server = await startRedisServer(t, { persistent: fault === 'snapshot' })
  const app = await buildTestApp(t, {
    env: { REDIS_URL: server.url, REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) },
  })
  t.equal(app.historyCache?.kind, 'redis')
  const seed = Math.floor(Math.random() * 2 ** 31)
  t.comment(`${fault}: seed ${seed}, storage ${storageKind}`)
  const load = new Load(app, seed)

  const before = await load.run(OPS.before, 1)
  checkPhase(t, 'before the outage', before)
  t.equal(app.historyCache?.status(), 'up', 'the cache is up before the outage')
  // Each session read twice in a row: a fill, then a hit (the random mix alone may not produce hits).
  const hitsBefore = app.repository.stats().hits
  checkPhase(t, 'reads of every session before the outage', await load.verifyAll())
  t.ok(
    app.repository.stats().hits > hitsBefore,
    `reads were served from Redis before the outage (${app.repository.stats().hits - hitsBefore} hits)`,
  )

  if (fault === 'snapshot') {
    t.equal(await server.command('SAVE'), '+OK', 'Redis saved a snapshot of the current entries')
    // After the snapshot, while Redis is up, the live entries move on: the snapshot is now stale.
    checkPhase(t, 'after the snapshot', await load.run(4, 2))
  }

  let during: Stats
  if (fault === 'freeze') {
    server.freeze()
    try {
      during = await load.run(OPS.during, 3)
      t.equal(app.historyCache?.status(), 'down', 'the frozen Redis is no longer trusted')
    } finally {
      // Whatever happened above: a stopped Redis would hang the teardown.
      server.thaw()
    }
  } else {
    await server.kill()
    during = await load.run(OPS.during, 3)
    t.equal(app.historyCache?.status(), 'down', 'the cache is down while Redis is')
  }
  checkPhase(t, 'during the outage', during)
  const duringSummary = summary(during)
  t.ok(
    duringSummary.max <= LATENCY_BOUND_MS,
    `during the outage every request answered within ${LATENCY_BOUND_MS} ms (command timeout ${COMMAND_TIMEOUT_MS} ms): ${JSON.stringify(duringSummary)}`,
  )

  if (fault !== 'freeze') await server.start()
  if (fault === 'snapshot') {
    const keys = Number((await server.command('DBSIZE')).replace(':', ''))
    t.ok(keys > 1, `Redis came back with its old entries (${keys} keys)`)
  }
  const recoveryStarted = Date.now()
  await waitFor(() => app.historyCache?.status() === 'up', 'the cache trusted again', 15_000, 25)
  const recoveryMs = Date.now() - recoveryStarted

  const after = await load.run(OPS.after, 4)
  checkPhase(t, 'after the outage', after)
  const hitsAfter = app.repository.stats().hits
  const final = await load.verifyAll()
  checkPhase(t, 'final reads of every session and every old name', final)
  t.ok(
    app.repository.stats().hits > hitsAfter,
    `Redis serves reads again (${app.repository.stats().hits - hitsAfter} hits in the final reads)`,
  )
  t.equal(app.historyCache?.status(), 'up')

  const writes = (s: Stats) => (s.byOp.write ?? 0) + (s.byOp.batch ?? 0)
  const changes = (s: Stats) =>
    (s.byOp.edit ?? 0) + (s.byOp.deleteMessage ?? 0) + (s.byOp.rename ?? 0) + (s.byOp.deleteSession ?? 0)
  // One line per scenario, for docs/reliability.md.
  t.comment(
    `RESULT ${fault}: during ${JSON.stringify(duringSummary)} (${writes(during)} writes, ${changes(during)} edits/deletes/renames, ` +
      `${(during.byOp.read ?? 0) + (during.byOp.list ?? 0)} reads); before ${JSON.stringify(summary(before))}; ` +
      `cache trusted again ${recoveryMs} ms after Redis was back; final reads ${final.requests}, ` +
      `failures ${before.failures.length + during.failures.length + after.failures.length + final.failures.length}, ` +
      `stale ${before.stale.length + during.stale.length + after.stale.length + final.stale.length}`,
  )
}

if (hasRedisServer()) {
  t.test('Redis killed (SIGKILL) under mixed load, restarted empty', (t) => scenario(t, 'kill'))
  t.test('Redis frozen (SIGSTOP, a partition) under mixed load, then SIGCONT', (t) => scenario(t, 'freeze'))
  t.test('Redis killed under mixed load after a SAVE, restarted with its old (stale) data', (t) =>
    scenario(t, 'snapshot'),
  )
} else {
  // CI has redis-server; a machine without it cannot run this fault, and says so by failing.
  t.fail('redis-server is not installed: the Redis fault tests cannot run (apt-get install -y redis-server)')
}
