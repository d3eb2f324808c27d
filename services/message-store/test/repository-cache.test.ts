// The repository owns the history cache's notifications: every mutation method tells the cache what
// it changed before it resolves. For each mutation (write, edit, delete message, delete session,
// rename, delete flow, mark failed), on the Redis backend (when the test command found Redis) and on
// the in-process one: warm the cache with a history read (a second read is a hit), mutate through
// the repository, and the next read (served through the same cache) reflects the mutation, and is
// cached again.
import { randomUUID } from 'node:crypto'
import type { MessageInput } from '@session-runtime/schemas'
import t, { type Test } from 'tap'
import { backends, buildTestApp, messageInput, storageKind } from './helpers/app.js'

const TENANT = 'tenant-a'
const BACKENDS = backends.redisUrl ? (['redis', 'memory'] as const) : (['memory'] as const)
t.comment(`storage: ${storageKind}, cache backends: ${BACKENDS.join(', ')}`)

const input = (flow_id: string, session_id: string, text: string) =>
  messageInput({ flow_id, session_id, text }) as MessageInput

for (const kind of BACKENDS) {
  t.test(`${kind} cache: no repository mutation leaves a stale cached history`, async (t) => {
    const app = await buildTestApp(t, { cache: kind === 'redis' ? 'default' : 'memory' })
    const repo = app.repository
    t.same(repo.cacheState(), { kind, status: 'up' }, `the app caches in ${kind}`)

    /** The session's history through the repository (and so through the cache), as texts. */
    const read = async (flow_id: string, session_id: string) => {
      const body = await repo.readHistory(TENANT, { flow_id, session_id, limit: 100, order: 'ASC' })
      return (JSON.parse(String(body)) as Array<{ text: string }>).map((m) => m.text)
    }
    /** Reads twice: the second read must be a hit that agrees with the first. */
    const cachedRead = async (t: Test, flow_id: string, session_id: string, what: string) => {
      const first = await read(flow_id, session_id)
      const before = repo.stats()
      t.same(await read(flow_id, session_id), first, `${what}: a second read agrees`)
      const after = repo.stats()
      t.same(
        { hits: after.hits - before.hits, misses: after.misses - before.misses },
        { hits: 1, misses: 0 },
        `${what}: the second read was served from the cache`,
      )
      return first
    }
    /** Seeds messages m1, m2 in session `s` of a new flow and warms the cache with them. */
    const seeded = async (t: Test, session_id = 's') => {
      const flow_id = randomUUID()
      const stored = await repo.write(TENANT, [input(flow_id, session_id, 'm1'), input(flow_id, session_id, 'm2')])
      t.same(await cachedRead(t, flow_id, session_id, 'warm'), ['m1', 'm2'], 'warm: the seeded history is cached')
      return { flow_id, ids: stored.map((m) => m.id) }
    }
    /** After a mutation: the history shows `expected`, and is cached again with it. */
    const shows = async (t: Test, flow_id: string, session_id: string, expected: string[]) =>
      t.same(await cachedRead(t, flow_id, session_id, 'after'), expected, `${session_id} after the mutation`)

    t.test('write', async (t) => {
      const { flow_id } = await seeded(t)
      await repo.write(TENANT, [input(flow_id, 's', 'm3')])
      await shows(t, flow_id, 's', ['m1', 'm2', 'm3'])
    })

    t.test('write of a failed run (new and replayed ids)', async (t) => {
      const { flow_id, ids } = await seeded(t)
      const replayed = { ...input(flow_id, 's', 'm2'), id: ids[1] as string }
      const settled = await repo.writeFailed(TENANT, [replayed, input(flow_id, 's', 'lost')])
      t.same(
        settled.map((m) => JSON.parse(m.json).error),
        [true, true],
      )
      await shows(t, flow_id, 's', ['m1'])
    })

    t.test('edit message', async (t) => {
      const { flow_id, ids } = await seeded(t)
      await repo.updateMessage(TENANT, ids[0] as string, { text: 'm1 edited' })
      await shows(t, flow_id, 's', ['m1 edited', 'm2'])
    })

    t.test('edit message: move it to another session', async (t) => {
      const { flow_id, ids } = await seeded(t)
      t.same(await read(flow_id, 'other'), [], 'the target session has no messages yet (the version lookup says so)')
      await repo.updateMessage(TENANT, ids[1] as string, { session_id: 'other' })
      await shows(t, flow_id, 's', ['m1'])
      await shows(t, flow_id, 'other', ['m2'])
    })

    t.test('delete message', async (t) => {
      const { flow_id, ids } = await seeded(t)
      await repo.deleteMessages(TENANT, [ids[0] as string])
      await shows(t, flow_id, 's', ['m2'])
    })

    t.test('delete session', async (t) => {
      const { flow_id } = await seeded(t)
      t.same(await repo.deleteSessions(TENANT, ['s'], flow_id), ['s'])
      await shows(t, flow_id, 's', [])
    })

    t.test('rename session', async (t) => {
      const { flow_id } = await seeded(t)
      t.same(await read(flow_id, 'renamed'), [], 'the new name has no messages yet (the version lookup says so)')
      await repo.renameSession(TENANT, 's', 'renamed', flow_id)
      await shows(t, flow_id, 's', [])
      await shows(t, flow_id, 'renamed', ['m1', 'm2'])
    })

    t.test('delete flow', async (t) => {
      const { flow_id } = await seeded(t)
      await repo.write(TENANT, [input(flow_id, 's2', 'n1')])
      t.same(await cachedRead(t, flow_id, 's2', 'warm'), ['n1'])
      await repo.deleteFlowMessages(TENANT, flow_id)
      await shows(t, flow_id, 's', [])
      await shows(t, flow_id, 's2', [])
    })

    t.test('mark failed', async (t) => {
      const { flow_id, ids } = await seeded(t)
      const updated = await repo.markFailed(TENANT, [ids[0] as string])
      t.equal(JSON.parse(updated.get(ids[0] as string) as string).error, true, 'marked')
      await shows(t, flow_id, 's', ['m2'])
    })
  })
}
