// POST /internal/messages/failed: the run-service settles the message writes of a failed run that it
// could not confirm. Whether the lost write committed or not, the message ends up stored with `error`
// true and `properties.state` "partial": never read as complete, never in a Memory history (cached or not).
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, cacheKind, history, internalHeaders, messageInput, storageKind, store } from './helpers/app.js'

const TENANT = 'tenant-a'
t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

type Stored = { id: string; text: string; error: boolean; edit: boolean; properties: Record<string, unknown> }

t.test('settling messages of a failed run', async (t) => {
  const app = await buildTestApp(t)
  const flow_id = randomUUID()
  const session_id = 'failed-run'
  const settle = (messages: unknown[], tenant = TENANT) =>
    app.inject({
      method: 'POST',
      url: '/internal/messages/failed',
      headers: internalHeaders(tenant),
      payload: { messages },
    })
  const monitor = async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/monitor/messages',
      headers: internalHeaders(TENANT),
      query: { flow_id, session_id },
    })
    t.equal(res.statusCode, 200)
    return res.json() as Stored[]
  }
  const remembered = async () => (await history(app, TENANT, { flow_id, session_id })).map((m) => m.text)

  const question = messageInput({ flow_id, session_id, text: 'question', properties: { state: 'complete' } })
  const reply = messageInput({
    flow_id,
    session_id,
    text: 'reply whose answer was lost',
    sender: 'Machine',
    sender_name: 'AI',
    properties: { state: 'complete', source: { id: 'ChatOutput-1' } },
  })
  await store(app, TENANT, [question, reply])
  t.same(await remembered(), ['question', 'reply whose answer was lost'])
  t.same(await remembered(), ['question', 'reply whose answer was lost'], 'cached')

  await t.test('a stored message is marked failed and leaves the history, cached or not', async (t) => {
    const res = await settle([reply])
    t.equal(res.statusCode, 200, res.body)
    const [settled] = res.json() as Stored[]
    t.equal(settled?.id, reply.id)
    t.equal(settled?.error, true)
    t.equal(settled?.properties.state, 'partial')
    t.same(settled?.properties.source, { id: 'ChatOutput-1' }, 'the other properties are kept')
    t.equal(settled?.edit, false, 'not an edit')
    t.equal(settled?.text, 'reply whose answer was lost', 'the text is kept')
    t.same(await remembered(), ['question'], 'the failed reply is out of the history')
    t.same(await remembered(), ['question'], 'also on a second (cached) read')
    const listed = await monitor()
    t.same(
      listed.map((m) => [m.text, m.error, m.properties.state]),
      [
        ['question', false, 'complete'],
        ['reply whose answer was lost', true, 'partial'],
      ],
      'the monitor shows it failed',
    )
  })

  await t.test('a message that never arrived is stored failed', async (t) => {
    const missing = messageInput({ flow_id, session_id, text: 'never arrived', sender: 'Machine', sender_name: 'AI' })
    const res = await settle([missing])
    t.equal(res.statusCode, 200, res.body)
    const [settled] = res.json() as Stored[]
    t.equal(settled?.id, missing.id)
    t.equal(settled?.error, true)
    t.equal(settled?.properties.state, 'partial')
    t.same(await remembered(), ['question'], 'not in the history')

    // The lost write arriving late (its retry) finds the failed message: it stays failed.
    const late = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: internalHeaders(TENANT),
      payload: missing,
    })
    t.equal(late.statusCode, 200, 'the late write is a replay')
    t.equal((late.json() as Stored).error, true, 'and answers the failed message')
    t.same(await remembered(), ['question'])
  })

  await t.test('settling again changes nothing', async (t) => {
    const before = await monitor()
    const res = await settle([reply, reply])
    t.equal(res.statusCode, 200, res.body)
    t.same(
      (res.json() as Stored[]).map((m) => m.id),
      [reply.id, reply.id],
    )
    t.same(await monitor(), before, 'the same messages, field for field')
  })

  await t.test("another tenant's id is refused and left alone", async (t) => {
    const res = await settle([{ ...question }], 'tenant-b')
    t.equal(res.statusCode, 409, res.body)
    t.same((await monitor()).find((m) => m.id === question.id)?.error, false, "the owner's message is unchanged")
  })

  await t.test('bad bodies are 4xx', async (t) => {
    t.equal((await settle([])).statusCode, 422, 'no messages')
    t.equal((await settle([{ ...question, id: 'not-a-uuid' }])).statusCode, 422, 'a bad id')
    const noToken = await app.inject({
      method: 'POST',
      url: '/internal/messages/failed',
      headers: { 'x-tenant-id': TENANT },
      payload: { messages: [question] },
    })
    t.equal(noToken.statusCode, 401, 'no internal token')
  })
})
