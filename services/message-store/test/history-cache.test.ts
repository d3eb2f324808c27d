// The history cache through the app: the internal write API, /internal/history and
// the monitor mutations, against real Postgres + Redis when the test command found
// them, else PGlite + the in-process cache. Rules (spec §5 and the cache issue):
// a read after an acknowledged write/edit/rename/delete never returns the old state,
// keys carry tenant and flow, entries expire and are bounded, the cache serves the
// chat pattern, and filters, DESC and error messages behave the same from cache and
// from Postgres.
import { randomUUID } from 'node:crypto'
import type { MessageInput } from '@session-runtime/schemas'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { CachedHistory, HistoryBackend } from '../src/cache/history-backend.js'
import { HistoryService, historyKey } from '../src/domain/history-service.js'
import { insertMessages } from '../src/domain/repository/insert.js'
import {
  backends,
  buildTestApp,
  cacheKind,
  history,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  type TestApp,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

type Msg = Awaited<ReturnType<typeof history>>[number] & { timestamp: string; error: boolean }

const TENANT = 'tenant-a'

let shared: Promise<TestApp> | undefined
/** One app for the tests that need no special settings; each test uses flows of its own. */
const sharedApp = () => {
  shared ??= buildTestApp(t)
  return shared
}
const SERVICE_OPTS = { maxEntries: 200, maxMessageBytes: 16_384 }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const texts = (list: { text: string }[]) => list.map((m) => m.text)
/** Parses JSON text, as a string or as a Buffer (the cache may hand out either). */
// biome-ignore lint/suspicious/noExplicitAny: test data of known shape
const parse = (json: string | Buffer): any => JSON.parse(String(json))

function latch() {
  let open!: () => void
  const wait = new Promise<void>((r) => {
    open = r
  })
  return { wait, open }
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Wraps a backend so that the next fill waits for a latch: the reader has read
 * Postgres and is about to fill the cache. Only the timing changes.
 */
function pausing(inner: HistoryBackend) {
  const fills: number[] = []
  let pause: { reached: () => void; gate: Promise<void> } | undefined
  const backend: HistoryBackend = {
    ...inner,
    async fill(key, version, flag, lastKey, entries) {
      fills.push(version)
      const p = pause
      pause = undefined
      if (p) {
        p.reached()
        await p.gate
      }
      return inner.fill(key, version, flag, lastKey, entries)
    },
  }
  return {
    backend,
    fills,
    pauseNextFill() {
      const reached = latch()
      const gate = latch()
      pause = { reached: reached.open, gate: gate.wait }
      return { reached: reached.wait, release: gate.open }
    },
  }
}

/** The textbook cache-aside: fill on a miss, delete on a write. The control of the race tests. */
function naiveCacheAside(): HistoryBackend {
  const map = new Map<string, CachedHistory>()
  return {
    kind: 'memory',
    status: () => 'up',
    async get(key, count) {
      const e = map.get(key)
      return e ? { ...e, entries: e.entries.slice(-count) } : null
    },
    async fill(key, version, flag, _lastKey, entries) {
      map.set(key, { version, flag, entries })
    },
    async append(key) {
      map.delete(key)
    },
    async invalidate(key) {
      map.delete(key)
    },
    async close() {
      map.clear()
    },
  }
}

const query = (flow_id: string, session_id: string, extra: Partial<{ limit: number; order: 'ASC' | 'DESC' }> = {}) => ({
  flow_id,
  session_id,
  limit: 100,
  order: 'ASC' as const,
  ...extra,
})

/** Stores messages in Postgres only, as if their cache entry had expired. */
async function seedUncached(app: TestApp, tenant: string, messages: ReturnType<typeof messageInput>[]) {
  return insertMessages(app.db, [{ tenant, inputs: messages as MessageInput[] }])
}

async function call(
  app: TestApp,
  method: 'PUT' | 'PATCH' | 'DELETE' | 'GET',
  url: string,
  payload?: unknown,
  tenant = TENANT,
) {
  const res = await app.inject({ method, url, headers: internalHeaders(tenant), ...(payload ? { payload } : {}) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

/** Postgres' view of a session (the monitor API, which never reads the cache), error messages excluded. */
async function postgresHistory(app: TestApp, flow_id: string, session_id: string) {
  const res = await call(
    app,
    'GET',
    `/api/v1/monitor/messages?flow_id=${flow_id}&session_id=${encodeURIComponent(session_id)}&limit=1000`,
  )
  return (res.json() as Msg[]).filter((m) => !m.error)
}

const counters = (app: TestApp) => ({ hits: app.repository.stats().hits, misses: app.repository.stats().misses })
function delta(app: TestApp, before: { hits: number; misses: number }) {
  const now = counters(app)
  return { hits: now.hits - before.hits, misses: now.misses - before.misses }
}

async function redisKeys(app: TestApp): Promise<string[]> {
  const url = backends.redisUrl as string
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await r.connect()
  try {
    const out: string[] = []
    let cursor = '0'
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${app.keyPrefix}h:*`, 'COUNT', 1000)
      cursor = next
      out.push(...keys)
    } while (cursor !== '0')
    return out
  } finally {
    r.disconnect()
  }
}

async function withRedis<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(backends.redisUrl as string, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await r.connect()
  try {
    return await fn(r)
  } finally {
    r.disconnect()
  }
}

t.test(
  'read after write: a read that missed and races with a write never fills the cache with the old state',
  async (t) => {
    const app = await sharedApp()
    const cache = app.historyCache as HistoryBackend

    /**
     * The classic cache-aside race, driven deterministically: a read misses and reads
     * Postgres; before it fills the cache, a write commits and is acknowledged
     * (including its cache step); then the read fills. Returns what reads see next.
     */
    async function writeRace(backend: HistoryBackend) {
      const p = pausing(backend)
      const service = new HistoryService(app.db, p.backend, SERVICE_OPTS)
      const flow_id = randomUUID()
      await seedUncached(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'before' })])
      const pause = p.pauseNextFill()
      const raced = service.read(TENANT, query(flow_id, 's'))
      await within(pause.reached, 5000, 'the read missed and read Postgres')
      const written = await seedUncached(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'after' })])
      await service.afterInsert(written.appends)
      pause.release()
      const racedResult = parse(await raced) as Msg[]
      const held = await backend.get(historyKey(TENANT, flow_id, 's'), 100)
      const next = parse(await service.read(TENANT, query(flow_id, 's'))) as Msg[]
      return { flow_id, racedResult, held, next, fills: p.fills, writtenVersion: written.appends[0]?.version ?? 0 }
    }

    t.test('a naive cache-aside ends up holding the old state; the version check never serves it', async (t) => {
      const naive = naiveCacheAside()
      const r = await writeRace(naive)
      t.same(texts(r.racedResult), ['before'], 'the raced read had read Postgres before the write')
      const held = r.held
      t.same(
        held?.entries.map((e) => parse(e).text),
        ['before'],
        'the race is really exercised: the cache holds the state from before the acknowledged write',
      )
      t.ok((held?.version ?? 0) < r.writtenVersion, 'labelled with the older version')
      t.same(texts(r.next), ['before', 'after'], 'and the next read serves the write all the same')
    })

    t.test(`the ${cache.kind} backend never does`, async (t) => {
      const r = await writeRace(cache)
      t.same(texts(r.racedResult), ['before'], 'the raced read had read Postgres before the write')
      t.ok(
        r.fills.some((v) => v < r.writtenVersion),
        'it tried to fill with a version older than the write',
      )
      t.same(texts(r.next), ['before', 'after'], 'the next read shows the write')
      const viaApp = await history(app, TENANT, query(r.flow_id, 's'))
      t.same(texts(viaApp), ['before', 'after'], 'and so does a read through the app')
      const before = counters(app)
      t.same(texts(await history(app, TENANT, query(r.flow_id, 's'))), ['before', 'after'])
      t.same(delta(app, before), { hits: 1, misses: 0 }, 'now served from the cache, correctly')
    })

    /** The same race with the mutation acknowledged by the app's own routes. */
    async function appRace(
      t: Test,
      seed: (flow_id: string) => Promise<unknown>,
      mutate: (flow_id: string) => Promise<unknown>,
      session = 's',
    ) {
      const p = pausing(cache)
      const service = new HistoryService(app.db, p.backend, SERVICE_OPTS)
      const flow_id = randomUUID()
      await seed(flow_id)
      const pause = p.pauseNextFill()
      const raced = service.read(TENANT, query(flow_id, session))
      // A session with no row yet is answered by the version lookup alone: nothing to fill, no race.
      const filling = await within(
        Promise.race([pause.reached.then(() => true), raced.then(() => false)]),
        5000,
        'the read missed and read Postgres',
      )
      await mutate(flow_id)
      pause.release()
      const racedResult = parse(await raced) as Msg[]
      const first = await history(app, TENANT, query(flow_id, session))
      const second = await history(app, TENANT, query(flow_id, session))
      t.same(second, first, 'a second read (from the cache) agrees')
      t.same(
        first.map((m) => m.id),
        (await postgresHistory(app, flow_id, session)).map((m) => m.id),
        'and both equal Postgres',
      )
      return { flow_id, racedResult, after: first, filling }
    }

    const two = (flow_id: string, session = 's') => [
      messageInput({ flow_id, session_id: session, text: 'one' }),
      messageInput({ flow_id, session_id: session, sender: 'Machine', sender_name: 'AI', text: 'two' }),
    ]

    t.test('write to a new session (the raced read saw no messages)', async (t) => {
      const r = await appRace(
        t,
        async () => {},
        (flow_id) => store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'first ever' })]),
      )
      t.same(r.racedResult, [])
      t.notOk(r.filling, 'the raced read found no session: it filled nothing')
      t.same(texts(r.after), ['first ever'])
    })

    t.test('write through the internal API', async (t) => {
      const r = await appRace(
        t,
        (flow_id) => seedUncached(app, TENANT, two(flow_id)),
        (flow_id) => store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'three' })]),
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(texts(r.after), ['one', 'two', 'three'])
    })

    t.test('edit (PUT text)', async (t) => {
      let id = ''
      const r = await appRace(
        t,
        async (flow_id) => {
          const seeded = two(flow_id)
          id = seeded[0]?.id as string
          // Through the app, then an edit: the cache holds a tombstone, the raced read misses.
          await store(app, TENANT, seeded)
          await call(app, 'PUT', `/api/v1/monitor/messages/${id}`, { text: 'one (edited once)' })
        },
        () => call(app, 'PUT', `/api/v1/monitor/messages/${id}`, { text: 'one (edited twice)' }),
      )
      t.same(texts(r.racedResult), ['one (edited once)', 'two'])
      t.same(texts(r.after), ['one (edited twice)', 'two'])
    })

    t.test('edit marking a message as an error', async (t) => {
      let id = ''
      const r = await appRace(
        t,
        (flow_id) => {
          const seeded = two(flow_id)
          id = seeded[1]?.id as string
          return seedUncached(app, TENANT, seeded)
        },
        () => call(app, 'PUT', `/api/v1/monitor/messages/${id}`, { error: true }),
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(texts(r.after), ['one'])
    })

    t.test('delete messages', async (t) => {
      let id = ''
      const r = await appRace(
        t,
        (flow_id) => {
          const seeded = two(flow_id)
          id = seeded[0]?.id as string
          return seedUncached(app, TENANT, seeded)
        },
        () => call(app, 'DELETE', '/api/v1/monitor/messages', [id]),
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(texts(r.after), ['two'])
    })

    t.test('delete the session', async (t) => {
      const r = await appRace(
        t,
        (flow_id) => seedUncached(app, TENANT, two(flow_id)),
        (flow_id) => call(app, 'DELETE', `/api/v1/monitor/messages/session/s?flow_id=${flow_id}`),
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(r.after, [])
    })

    t.test('delete sessions in bulk', async (t) => {
      const session = `bulk ${randomUUID()}`
      const r = await appRace(
        t,
        (flow_id) => seedUncached(app, TENANT, two(flow_id, session)),
        () => call(app, 'DELETE', '/api/v1/monitor/messages/sessions', [session]),
        session,
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(r.after, [])
    })

    t.test('rename: the old name is empty, the new one has the messages', async (t) => {
      const newName = `renamed ${randomUUID()}`
      const r = await appRace(
        t,
        (flow_id) => seedUncached(app, TENANT, two(flow_id, 'old name')),
        (flow_id) =>
          call(
            app,
            'PATCH',
            `/api/v1/monitor/messages/session/old%20name?flow_id=${flow_id}&new_session_id=${encodeURIComponent(newName)}`,
          ),
        'old name',
      )
      t.same(texts(r.racedResult), ['one', 'two'])
      t.same(r.after, [], 'the old session is empty')
      t.same(texts(await history(app, TENANT, query(r.flow_id, newName))), ['one', 'two'])
    })

    t.test('a rename into a session whose read raced', async (t) => {
      const newName = 'target'
      const r = await appRace(
        t,
        (flow_id) => seedUncached(app, TENANT, two(flow_id, 'source')),
        (flow_id) =>
          call(app, 'PATCH', `/api/v1/monitor/messages/session/source?flow_id=${flow_id}&new_session_id=${newName}`),
        newName,
      )
      t.same(r.racedResult, [], 'the raced read saw the target empty')
      t.notOk(r.filling, 'and filled nothing')
      t.same(texts(r.after), ['one', 'two'])
    })
  },
)

t.test('an entry too large for the in-process cache does not let a raced read fill the old state', async (t) => {
  // CACHE_MAX_BYTES only bounds the in-process cache: its own app.
  const app = await buildTestApp(t, {
    cache: 'memory',
    env: { CACHE_MAX_BYTES: '2400', CACHE_MAX_MESSAGE_BYTES: '1024' },
  })
  const cache = app.historyCache as HistoryBackend
  const flow_id = randomUUID()
  const text = (i: number) => `message ${i} ${'x'.repeat(140)}`
  const stored = await store(
    app,
    TENANT,
    [1, 2, 3, 4].map((i) => messageInput({ flow_id, session_id: 's', text: text(i) })),
  )
  const key = historyKey(TENANT, flow_id, 's')
  const entries = (await cache.get(key, 100))?.entries ?? []
  t.equal(entries.length, 4, 'the session is cached')
  const size = (n: number) => key.length + 64 + n * String(entries[0] ?? '').length
  t.ok(size(4) <= 2400 && size(5) > 2400, `4 messages fit the cache (${size(4)} bytes), 5 do not (${size(5)})`)
  await call(app, 'PUT', `/api/v1/monitor/messages/${stored[0]?.id}`, { text: text(1) })

  const p = pausing(cache)
  const service = new HistoryService(app.db, p.backend, SERVICE_OPTS)
  const pause = p.pauseNextFill()
  const raced = service.read(TENANT, query(flow_id, 's'))
  await within(pause.reached, 5000, 'the read missed')
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: text(5) })])
  // Another reader fills the new state: too large to keep.
  t.equal((await history(app, TENANT, query(flow_id, 's'))).length, 5)
  pause.release()
  t.equal(parse(await raced).length, 4, 'the raced read had read 4 messages')
  for (let i = 0; i < 2; i++) {
    t.same(
      texts(await history(app, TENANT, query(flow_id, 's'))),
      [1, 2, 3, 4, 5].map(text),
      'every later read has the 5th message',
    )
  }
})

t.test('randomized: concurrent writers and readers never see a state older than an acknowledged write', async (t) => {
  const app = await sharedApp()
  const flow_id = randomUUID()
  const seed = Number(process.env.STRESS_SEED ?? Math.floor(Math.random() * 1_000_000))
  t.comment(`stress seed ${seed} (STRESS_SEED=${seed} replays it)`)
  const rand = mulberry32(seed)
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)] as T
  const sessions = ['s0', 's1', 's2']
  const WRITERS = 4
  const OPS = 25
  const READERS = 4
  const READS = 40

  let tick = 0
  interface Model {
    id: string
    session: string
    timestamp: string
    inserted: number
    /** Acknowledged edits: version k acknowledged at tick. */
    edits: { k: number; ack: number }[]
    /** When the delete was sent, and when it was acknowledged. */
    deleting?: number
    deleted?: number
    text: string
  }
  const model = new Map<string, Model>()
  const reads: { session: string; start: number; end: number; limit: number; result: Msg[] }[] = []
  const version = (text: string) => Number(text.split('#')[1])

  // Each read waits for a write acknowledged since the reader's previous one (or for the writers to finish), so
  // reads and writes interleave on every backend: on embedded PGlite (one statement at a time) the readers would
  // otherwise run ahead of the writers and never meet a change.
  let acked = 0
  let writersDone = false
  let wake = () => {}
  let nextAck = new Promise<void>((resolve) => {
    wake = resolve
  })
  const acknowledged = () => {
    acked++
    const woken = wake
    nextAck = new Promise<void>((resolve) => {
      wake = resolve
    })
    woken()
  }
  const writer = async () => {
    const mine: Model[] = []
    for (let i = 0; i < OPS; i++, acknowledged()) {
      const live = mine.filter((m) => m.deleted === undefined)
      const r = rand()
      if (r < 0.6 || live.length === 0) {
        const id = randomUUID()
        const session = pick(sessions)
        const [msg] = await store(app, TENANT, [messageInput({ id, flow_id, session_id: session, text: `${id}#0` })])
        const m: Model = {
          id,
          session,
          timestamp: msg?.timestamp as string,
          inserted: ++tick,
          edits: [],
          text: `${id}#0`,
        }
        model.set(id, m)
        mine.push(m)
      } else if (r < 0.85) {
        const m = pick(live)
        const k = m.edits.length + 1
        await call(app, 'PUT', `/api/v1/monitor/messages/${m.id}`, { text: `${m.id}#${k}` })
        m.edits.push({ k, ack: ++tick })
        m.text = `${m.id}#${k}`
      } else {
        const m = pick(live)
        m.deleting = ++tick
        await call(app, 'DELETE', '/api/v1/monitor/messages', [m.id])
        m.deleted = ++tick
      }
    }
  }
  // Half of the readers go through the app; the other half through a HistoryService on the
  // same backend whose fills are delayed by a random few milliseconds, which widens the
  // window between a reader's Postgres read and its fill, where the cache-aside race lives.
  const jittered: HistoryBackend = {
    ...(app.historyCache as HistoryBackend),
    async fill(...args) {
      await sleep(Math.floor(rand() * 8))
      return (app.historyCache as HistoryBackend).fill(...args)
    },
  }
  const slowFills = new HistoryService(app.db, jittered, SERVICE_OPTS)
  const reader = async (r: number) => {
    let seen = 0
    for (let i = 0; i < READS; i++) {
      if (acked === seen && !writersDone) await nextAck
      seen = acked
      const session = pick(sessions)
      const limit = rand() < 0.5 ? 200 : 5
      const start = ++tick
      const result = (
        r % 2
          ? parse(await slowFills.read(TENANT, { flow_id, session_id: session, limit, order: 'ASC' }))
          : await history(app, TENANT, { flow_id, session_id: session, limit })
      ) as Msg[]
      reads.push({ session, start, end: ++tick, limit, result })
    }
  }
  // Every session has a message before the run: else, where the readers outpace the writers (embedded PGlite
  // runs one statement at a time), nearly every read finds no session and neither cache path is exercised.
  for (const session of sessions) {
    const id = randomUUID()
    const [msg] = await store(app, TENANT, [messageInput({ id, flow_id, session_id: session, text: `${id}#0` })])
    model.set(id, { id, session, timestamp: msg?.timestamp as string, inserted: ++tick, edits: [], text: `${id}#0` })
  }
  const before = counters(app)
  await within(
    Promise.all([
      Promise.all(Array.from({ length: WRITERS }, writer)).then(() => {
        writersDone = true
        acknowledged()
      }),
      ...Array.from({ length: READERS }, (_, r) => reader(r)),
    ]),
    40_000,
    'the stress run',
  )
  const used = delta(app, before)
  used.hits += slowFills.hits
  used.misses += slowFills.misses
  t.comment(`${reads.length} reads: ${used.hits} from the cache, ${used.misses} from Postgres`)
  t.ok(used.hits > 0 && used.misses > 0, 'both paths were exercised')

  const problems: string[] = []
  for (const read of reads) {
    const ids = read.result.map((m) => m.id)
    if (new Set(ids).size !== ids.length) problems.push(`duplicates in a read of ${read.session}`)
    for (let i = 1; i < read.result.length; i++) {
      if ((read.result[i - 1] as Msg).timestamp > (read.result[i] as Msg).timestamp) {
        problems.push(`read of ${read.session} out of order`)
      }
    }
    for (const m of read.result) {
      const known = model.get(m.id)
      if (!known || known.session !== read.session) problems.push(`foreign message ${m.id} in ${read.session}`)
      else if (known.deleted !== undefined && known.deleted < read.start) {
        problems.push(`message ${m.id} deleted (tick ${known.deleted}) before a read (tick ${read.start}) shows up`)
      } else {
        const acked = Math.max(0, ...known.edits.filter((e) => e.ack < read.start).map((e) => e.k))
        if (version(m.text) < acked) {
          problems.push(`read at tick ${read.start} shows ${m.text}, edit #${acked} was acknowledged`)
        }
      }
    }
    const oldestShown = read.result[0]?.timestamp
    for (const m of model.values()) {
      if (m.session !== read.session || m.inserted >= read.start) continue
      // A delete sent before the read ended may or may not be visible to it.
      if (m.deleting !== undefined && m.deleting < read.end) continue
      if (ids.includes(m.id)) continue
      // Absent: fine only if the read is full of messages newer than it (the newest `limit`).
      const full = read.result.length === read.limit && oldestShown !== undefined && oldestShown >= m.timestamp
      if (!full)
        problems.push(`message ${m.id} acknowledged at tick ${m.inserted} missing from a read at ${read.start}`)
    }
  }
  t.same(
    problems.slice(0, 10),
    [],
    `every read reflects every write acknowledged before it started (${reads.length} reads)`,
  )

  for (const session of sessions) {
    const expected = [...model.values()]
      .filter((m) => m.session === session && m.deleted === undefined)
      .sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0))
    await history(app, TENANT, { flow_id, session_id: session, limit: 200 })
    const c = counters(app)
    const cached = await history(app, TENANT, { flow_id, session_id: session, limit: 200 })
    t.same(delta(app, c), { hits: 1, misses: 0 }, `${session}: the final read is served from the cache`)
    const pg = await postgresHistory(app, flow_id, session)
    t.same(
      cached.map((m) => [m.id, m.text]),
      pg.map((m) => [m.id, m.text]),
      `${session}: the cached history equals Postgres`,
    )
    t.same(
      new Set(pg.map((m) => `${m.id}/${m.text}`)),
      new Set(expected.map((m) => `${m.id}/${m.text}`)),
      `${session}: Postgres holds what was acknowledged`,
    )
  }
})

t.test('cache keys carry tenant and flow: the same session ID never shares an entry', async (t) => {
  const app = await sharedApp()
  const flow1 = randomUUID()
  const flow2 = randomUUID()
  const session = 'shared session/1'
  const places = [
    { tenant: 'tenant:a', flow_id: flow1 },
    { tenant: 'tenant:a', flow_id: flow2 },
    { tenant: 'tenant-b', flow_id: flow1 },
    { tenant: 'tenant-b', flow_id: flow2 },
  ]
  for (const p of places) {
    await store(app, p.tenant, [
      messageInput({ flow_id: p.flow_id, session_id: session, text: `${p.tenant} ${p.flow_id}` }),
    ])
  }
  const before = counters(app)
  for (const p of places) {
    t.same(texts(await history(app, p.tenant, query(p.flow_id, session))), [`${p.tenant} ${p.flow_id}`])
  }
  t.same(delta(app, before), { hits: 4, misses: 0 }, 'each read is served from its own entry')

  // Change one of the four: the other three stay cached and unchanged.
  await store(app, 'tenant:a', [messageInput({ flow_id: flow1, session_id: session, text: 'more' })])
  const victim = (await history(app, 'tenant:a', query(flow1, session)))[0] as Msg
  await call(app, 'PUT', `/api/v1/monitor/messages/${victim.id}`, { text: 'edited' }, 'tenant:a')
  const after = counters(app)
  t.same(texts(await history(app, 'tenant:a', query(flow1, session))), ['edited', 'more'])
  for (const p of places.slice(1)) {
    t.same(texts(await history(app, p.tenant, query(p.flow_id, session))), [`${p.tenant} ${p.flow_id}`])
  }
  t.same(delta(app, after), { hits: 3, misses: 1 }, 'only the edited entry missed')

  const keys = places.map((p) => historyKey(p.tenant, p.flow_id, session))
  t.equal(new Set(keys).size, 4, 'four distinct keys')
  for (const [i, p] of places.entries()) {
    t.ok(keys[i]?.includes(encodeURIComponent(p.tenant)) && keys[i]?.includes(p.flow_id), `key ${keys[i]}`)
  }

  if (backends.redisUrl) {
    const redis = (await redisKeys(app)).filter((k) => k.includes(flow1) || k.includes(flow2))
    t.equal(redis.length, 4, 'Redis holds four entries for these flows')
    for (const p of places) {
      const mine = redis.filter((k) => k.includes(`{${encodeURIComponent(p.tenant)}:${p.flow_id}:`))
      t.equal(mine.length, 1, `one key for ${p.tenant} / ${p.flow_id}`)
      t.equal(
        mine[0],
        `${app.keyPrefix}h:{${historyKey(p.tenant, p.flow_id, session)}}`,
        'prefix, then tenant, flow and session as one hash tag',
      )
    }
    for (const k of redis) {
      t.notOk(k.endsWith(`h:{${encodeURIComponent(session)}}`), 'no key is the session ID alone')
    }
  }
})

t.test('the chat pattern is served from the cache after the first fill', async (t) => {
  const app = await sharedApp()
  const flow_id = randomUUID()
  // An existing conversation not in the cache (its entry expired).
  await seedUncached(app, TENANT, [
    messageInput({ flow_id, session_id: 'chat', text: 'u0' }),
    messageInput({ flow_id, session_id: 'chat', sender: 'Machine', sender_name: 'AI', text: 'a0' }),
  ])
  const before = counters(app)
  const expected = ['u0', 'a0']
  t.same(texts(await history(app, TENANT, query(flow_id, 'chat'))), expected)
  t.same(delta(app, before), { hits: 0, misses: 1 }, 'the first read fills')
  for (let turn = 1; turn <= 3; turn++) {
    await store(app, TENANT, [messageInput({ flow_id, session_id: 'chat', text: `u${turn}` })])
    expected.push(`u${turn}`)
    t.same(texts(await history(app, TENANT, query(flow_id, 'chat'))), expected)
    await store(app, TENANT, [
      messageInput({ flow_id, session_id: 'chat', sender: 'Machine', sender_name: 'AI', text: `a${turn}` }),
    ])
    expected.push(`a${turn}`)
    t.same(texts(await history(app, TENANT, query(flow_id, 'chat'))), expected)
  }
  t.same(delta(app, before), { hits: 6, misses: 1 }, 'then every read of the conversation is a hit')

  // A new conversation: the first write makes a complete entry, no read ever misses.
  const fresh = counters(app)
  for (let turn = 0; turn < 3; turn++) {
    await store(app, TENANT, [messageInput({ flow_id, session_id: 'new chat', text: `q${turn}` })])
    t.equal((await history(app, TENANT, query(flow_id, 'new chat'))).length, 2 * turn + 1)
    await store(app, TENANT, [
      messageInput({ flow_id, session_id: 'new chat', sender: 'Machine', sender_name: 'AI', text: `r${turn}` }),
    ])
    t.equal((await history(app, TENANT, query(flow_id, 'new chat', { limit: 4 }))).length, Math.min(4, 2 * turn + 2))
  }
  t.same(delta(app, fresh), { hits: 6, misses: 0 }, 'a new session is cached from its first message')
})

t.test('appends applied in the wrong order drop the entry, never misorder it', async (t) => {
  const app = await sharedApp()
  const cache = app.historyCache as HistoryBackend
  const flow_id = randomUUID()
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'first' })])
  t.equal((await cache.get(historyKey(TENANT, flow_id, 's'), 10))?.flag, 'c', 'cached')
  // Two writes commit, A then B, but their cache steps run B first (e.g. A's request was slower).
  const a = await insertMessages(app.db, [
    { tenant: TENANT, inputs: [messageInput({ flow_id, session_id: 's', text: 'A' }) as MessageInput] },
  ])
  const b = await insertMessages(app.db, [
    { tenant: TENANT, inputs: [messageInput({ flow_id, session_id: 's', text: 'B' }) as MessageInput] },
  ])
  const cacheSteps = new HistoryService(app.db, cache, SERVICE_OPTS)
  await cacheSteps.afterInsert(b.appends)
  await cacheSteps.afterInsert(a.appends)
  t.equal(await cache.get(historyKey(TENANT, flow_id, 's'), 10), null, 'dropped')
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['first', 'A', 'B'])
  const before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['first', 'A', 'B'])
  t.same(delta(app, before), { hits: 1, misses: 0 }, 'refilled in the right order')
})

for (const cache of backends.redisUrl ? (['default', 'memory'] as const) : (['memory'] as const)) {
  t.test(
    `${cache === 'memory' ? 'memory' : cacheKind} cache: a write whose messages sort before a concurrently committed one drops the entry`,
    async (t) => {
      const app = await buildTestApp(t, { cache })
      const backend = app.historyCache as HistoryBackend
      const flow_id = randomUUID()
      const key = historyKey(TENANT, flow_id, 's')
      // Slows the insert of one message down after its timestamp is taken and before its
      // statement reaches the session row: a later write can commit in between.
      await app.db.query(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.text LIKE 'slow%' THEN PERFORM pg_sleep(0.4); END IF; RETURN NEW; END $$`)
      await app.db.query(
        'CREATE TRIGGER slow_insert BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION slow_insert()',
      )
      await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'first' })])
      const slow = store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'slow A' })])
      await sleep(100)
      const [b] = await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'B' })])
      const [a] = await slow
      const expected = ['first', 'slow A', 'B']
      if (storageKind === 'postgres') {
        t.ok((a?.timestamp as string) < (b?.timestamp as string), 'A sorts before B but committed after it')
        t.equal(await backend.get(key, 10), null, "A's append found B's message last: the entry is dropped")
      } else {
        t.comment('PGlite runs one statement at a time: the writes cannot interleave, only the result is checked')
        expected.splice(
          1,
          2,
          ...[a, b]
            .sort((x, y) => ((x?.timestamp as string) < (y?.timestamp as string) ? -1 : 1))
            .map((m) => m?.text as string),
        )
      }
      t.same(texts(await history(app, TENANT, query(flow_id, 's'))), expected)
      const before = counters(app)
      t.same(texts(await history(app, TENANT, query(flow_id, 's'))), expected, 'the cached history is in order')
      t.same(delta(app, before), { hits: 1, misses: 0 })
    },
  )
}

t.test('error messages never appear in a history, from the cache or from Postgres', async (t) => {
  const app = await sharedApp()
  const cache = app.historyCache as HistoryBackend
  const direct = new HistoryService(app.db, undefined, SERVICE_OPTS)
  const flow_id = randomUUID()
  const fromPostgres = async () => texts(parse(await direct.read(TENANT, query(flow_id, 's'))) as Msg[])
  const [u1] = await store(app, TENANT, [
    messageInput({ flow_id, session_id: 's', text: 'u1' }),
    messageInput({ flow_id, session_id: 's', sender: 'Machine', sender_name: 'AI', text: 'boom', error: true }),
    messageInput({ flow_id, session_id: 's', sender: 'Machine', sender_name: 'AI', text: 'a1' }),
  ])
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'failed again', error: true })])
  let before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['u1', 'a1'], 'from the cache')
  t.same(delta(app, before), { hits: 1, misses: 0 })
  const cached = await cache.get(historyKey(TENANT, flow_id, 's'), 100)
  t.notOk(
    cached?.entries.some((e) => parse(e).error),
    'the cache holds no error message',
  )
  t.same(await fromPostgres(), ['u1', 'a1'], 'from Postgres')

  await call(app, 'PUT', `/api/v1/monitor/messages/${u1?.id}`, { error: true })
  before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['a1'], 'marked as an error: gone (a miss)')
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['a1'], 'gone (a hit)')
  t.same(delta(app, before), { hits: 1, misses: 1 })
  t.same(await fromPostgres(), ['a1'])
  await call(app, 'PUT', `/api/v1/monitor/messages/${u1?.id}`, { error: false })
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['u1', 'a1'], 'unmarked: back in its place')
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['u1', 'a1'])
  t.same(await fromPostgres(), ['u1', 'a1'])
})

t.test('sender and sender_name filters and DESC order, from Postgres and from the cache', async (t) => {
  const app = await sharedApp()
  const flow_id = randomUUID()
  await seedUncached(app, TENANT, [
    messageInput({ flow_id, session_id: 'f', text: 'u1' }),
    messageInput({ flow_id, session_id: 'f', sender: 'Machine', sender_name: 'AI', text: 'a1' }),
    messageInput({ flow_id, session_id: 'f', sender: 'Machine', sender_name: 'Tool', text: 'tool1' }),
    messageInput({ flow_id, session_id: 'f', sender: 'Machine', sender_name: 'AI', text: 'oops', error: true }),
    messageInput({ flow_id, session_id: 'f', text: 'u2' }),
    messageInput({ flow_id, session_id: 'f', sender: 'Machine', sender_name: 'AI', text: 'a2' }),
  ])
  const cases: [Record<string, string | number>, string[]][] = [
    [{}, ['u1', 'a1', 'tool1', 'u2', 'a2']],
    [{ order: 'DESC' }, ['a2', 'u2', 'tool1', 'a1', 'u1']],
    [{ limit: 2 }, ['u2', 'a2']],
    [{ limit: 2, order: 'DESC' }, ['a2', 'u2']],
    [{ sender: 'Machine' }, ['a1', 'tool1', 'a2']],
    [{ sender_name: 'AI' }, ['a1', 'a2']],
    [{ sender: 'Machine', sender_name: 'AI', order: 'DESC' }, ['a2', 'a1']],
    [{ sender: 'User', limit: 1, order: 'DESC' }, ['u2']],
    [{ sender: 'User', limit: 1 }, ['u2']],
    [{ sender_name: 'Tool', order: 'DESC' }, ['tool1']],
    [{ sender: 'Nobody' }, []],
  ]
  const run = async (path: string, expectHit: boolean) => {
    for (const [q, expected] of cases) {
      const filtered = q.sender !== undefined || q.sender_name !== undefined
      const before = counters(app)
      const got = await history(app, TENANT, { flow_id, session_id: 'f', limit: 100, ...q })
      t.same(texts(got), expected, `${path}: ${JSON.stringify(q)}`)
      // Unfiltered reads fill the cache on their miss; only filtered ones keep missing before it is filled.
      if (filtered) t.same(delta(app, before), expectHit ? { hits: 1, misses: 0 } : { hits: 0, misses: 1 })
    }
  }
  // Filtered reads first: nothing cached yet, they are answered by Postgres.
  const filteredFirst = [...cases.filter(([q]) => q.sender || q.sender_name)]
  for (const [q, expected] of filteredFirst) {
    const before = counters(app)
    t.same(
      texts(await history(app, TENANT, { flow_id, session_id: 'f', limit: 100, ...q })),
      expected,
      `Postgres: ${JSON.stringify(q)}`,
    )
    t.same(delta(app, before), { hits: 0, misses: 1 }, 'from Postgres')
  }
  // An unfiltered read fills the cache; then everything is answered from it.
  await history(app, TENANT, query(flow_id, 'f'))
  await run('cache', true)
})

t.test('entries expire after CACHE_TTL_SECONDS, and expiry is a correct miss', async (t) => {
  const app = await buildTestApp(t, { env: { CACHE_TTL_SECONDS: '1' } })
  const flow_id = randomUUID()
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'one' })])
  if (backends.redisUrl) {
    const [key] = await redisKeys(app)
    const pttl = await withRedis((r) => r.pttl(key as string))
    t.ok(pttl > 0 && pttl <= 1000, `PTTL ${pttl} ms within CACHE_TTL_SECONDS`)
  }
  let before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['one'])
  t.same(delta(app, before), { hits: 1, misses: 0 })
  await sleep(1300)
  if (backends.redisUrl) t.same(await redisKeys(app), [], 'Redis dropped the entry')
  // A write while the entry is gone, then reads.
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: 'two' })])
  before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['one', 'two'], 'a miss, from Postgres')
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['one', 'two'], 'then a hit')
  t.same(delta(app, before), { hits: 1, misses: 1 })
  await sleep(1300)
  before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's'))), ['one', 'two'])
  t.same(delta(app, before), { hits: 0, misses: 1 }, 'expired again: a miss')
})

t.test('entries are bounded: CACHE_MAX_MESSAGES per session, CACHE_MAX_MESSAGE_BYTES per message', async (t) => {
  const app = await buildTestApp(t, { env: { CACHE_MAX_MESSAGES: '5', CACHE_MAX_MESSAGE_BYTES: '1024' } })
  const cache = app.historyCache as HistoryBackend
  const flow_id = randomUUID()
  const key = historyKey(TENANT, flow_id, 's')
  const names = Array.from({ length: 8 }, (_, i) => `m${i + 1}`)
  await store(
    app,
    TENANT,
    names.map((text, i) =>
      messageInput({ flow_id, session_id: 's', text, ...(i % 2 ? { sender: 'Machine', sender_name: 'AI' } : {}) }),
    ),
  )
  const llen = async () => withRedis(async (r) => r.llen((await redisKeys(app))[0] as string))
  let entry = await cache.get(key, 1000)
  t.equal(entry?.flag, 'p', 'a partial entry')
  t.same(
    entry?.entries.map((e) => parse(e).text),
    names.slice(3),
    'the newest 5',
  )
  if (backends.redisUrl) t.equal(await llen(), 6, 'LLEN = 5 messages + header')
  let before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 5 }))), names.slice(3), 'limit 5: a hit')
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 8 }))), names, 'limit 8: a miss, all 8')
  t.same(
    texts(await history(app, TENANT, { flow_id, session_id: 's', limit: 2, sender: 'Machine' })),
    ['m6', 'm8'],
    'a filtered read the cached part can answer',
  )
  t.same(
    texts(await history(app, TENANT, { flow_id, session_id: 's', limit: 4, sender: 'Machine' })),
    ['m2', 'm4', 'm6', 'm8'],
    'a filtered read it cannot',
  )
  t.same(delta(app, before), { hits: 2, misses: 2 })
  t.equal((await cache.get(key, 1000))?.entries.length, 5, 'the refill kept 5')

  for (let i = 9; i <= 12; i++) await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: `m${i}` })])
  names.push('m9', 'm10', 'm11', 'm12')
  entry = await cache.get(key, 1000)
  t.same(
    entry?.entries.map((e) => parse(e).text),
    names.slice(-5),
    'appends keep the newest 5',
  )
  if (backends.redisUrl) t.equal(await llen(), 6, 'still LLEN 6')

  const big = `big ${'y'.repeat(1100)}`
  await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: big })])
  names.push(big)
  t.equal(await cache.get(key, 1000), null, 'a message over CACHE_MAX_MESSAGE_BYTES: dropped, not appended')
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 3 }))), names.slice(-3), 'read from Postgres')
  entry = await cache.get(key, 1000)
  t.equal(entry?.flag, 'p')
  t.same(entry?.entries.map(String), [], 'the fill stops at the large message: nothing cached')
  before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 3 }))), names.slice(-3))
  t.same(delta(app, before), { hits: 0, misses: 1 }, 'so reads that need it keep going to Postgres')
  for (let i = 13; i <= 15; i++) await store(app, TENANT, [messageInput({ flow_id, session_id: 's', text: `m${i}` })])
  names.push('m13', 'm14', 'm15')
  before = counters(app)
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 3 }))), names.slice(-3), 'newer ones: a hit')
  t.same(texts(await history(app, TENANT, query(flow_id, 's', { limit: 5 }))), names.slice(-5), 'past it: a miss')
  t.same(delta(app, before), { hits: 1, misses: 1 })
  entry = await cache.get(key, 1000)
  t.notOk(
    entry?.entries.some((e) => String(e).length > 1024),
    'no cached message is over the limit',
  )
  if (backends.redisUrl) {
    const all = await withRedis(async (r) => r.lrange((await redisKeys(app))[0] as string, 0, -1))
    t.notOk(
      all.some((e) => e.includes('yyyy')),
      'Redis never held the large message',
    )
  }
})

t.test('the in-process cache is bounded by CACHE_MAX_BYTES with LRU eviction', async (t) => {
  const maxBytes = 8192
  const app = await buildTestApp(t, { cache: 'memory', env: { CACHE_MAX_BYTES: String(maxBytes) } })
  const cache = app.historyCache as HistoryBackend
  const flow_id = randomUUID()
  const session = (i: number) => `session-${String(i).padStart(2, '0')}`
  const fill = (i: number) =>
    store(
      app,
      TENANT,
      [1, 2, 3, 4].map((n) =>
        messageInput({ flow_id, session_id: session(i), text: `s${i} m${n} ${'z'.repeat(100)}` }),
      ),
    )
  await fill(0)
  const key0 = historyKey(TENANT, flow_id, session(0))
  const perSession =
    key0.length + 64 + ((await cache.get(key0, 10))?.entries ?? []).reduce((n, e) => n + String(e).length, 0)
  const capacity = Math.floor(maxBytes / perSession)
  t.ok(capacity >= 2 && capacity < 10, `room for ${capacity} sessions of ${perSession} bytes`)
  for (let i = 1; i < capacity; i++) await fill(i)
  let before = counters(app)
  for (let i = 0; i < capacity; i++) t.equal((await history(app, TENANT, query(flow_id, session(i)))).length, 4)
  t.same(delta(app, before), { hits: capacity, misses: 0 }, 'all fit')
  // Session 0 was read first: touch it again so session 1 is the least recently used.
  await history(app, TENANT, query(flow_id, session(0)))
  await fill(capacity)
  t.ok(await cache.get(historyKey(TENANT, flow_id, session(0)), 10), 'the recently read session stayed')
  t.equal(await cache.get(historyKey(TENANT, flow_id, session(1)), 10), null, 'the least recently used was evicted')
  before = counters(app)
  t.equal((await history(app, TENANT, query(flow_id, session(1)))).length, 4, 'an evicted session reads correctly')
  t.same(delta(app, before), { hits: 0, misses: 1 }, 'from Postgres')
  for (let i = capacity + 1; i < capacity + 10; i++) await fill(i)
  let cached = 0
  for (let i = 0; i < capacity + 10; i++) if (await cache.get(historyKey(TENANT, flow_id, session(i)), 10)) cached++
  t.ok(cached <= capacity, `never more than ${capacity} sessions cached (${cached})`)
})

/** A small seeded PRNG, so a failing stress run can be replayed. */
function mulberry32(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
