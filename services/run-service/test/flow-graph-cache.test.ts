import t from 'tap'
import { FlowGraphCache } from '../src/domain/flow-graph-cache.js'
import { builtInComponents, type FlowGraph, parseFlow, runnableGraph } from '../src/engine/index.js'
import { buildTestApp, internalHeaders, startMessageStore } from './helpers/app.js'
import { fixture } from './helpers/flows.js'

const graph = (): FlowGraph => runnableGraph(parseFlow(fixture('simple'), builtInComponents))

t.test('FlowGraphCache: by ID and version, least recently used out, 0 keeps nothing', async (t) => {
  const cache = new FlowGraphCache(2)
  const [a, b, c] = [graph(), graph(), graph()]
  cache.set('a', '1', a)
  t.equal(cache.get('a', '1'), a)
  t.equal(cache.get('a', '2'), undefined, 'another version of the row is a miss')
  cache.set('b', '1', b)
  t.equal(cache.get('a', '1'), a, 'a is now the most recently used')
  cache.set('c', '1', c)
  t.equal(cache.get('b', '1'), undefined, 'b, the least recently used, went out')
  t.equal(cache.get('a', '1'), a)
  t.equal(cache.get('c', '1'), c)
  cache.set('a', '2', b)
  t.equal(cache.get('a', '1'), undefined, 'a new version replaces the old one')
  t.equal(cache.size, 2)

  const none = new FlowGraphCache(0)
  none.set('a', '1', a)
  t.equal(none.get('a', '1'), undefined)
})

t.test('runs see an updated flow at once, and a deleted one is gone', async (t) => {
  const store = await startMessageStore(t)
  const app = await buildTestApp(t, { messageStoreUrl: store.url })
  const imported = await app.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: internalHeaders(),
    payload: { ...fixture('simple'), endpoint_name: 'cached-echo' },
  })
  const flow = imported.json() as {
    id: string
    data: { nodes: { data: { type: string; node: { template: Record<string, { value: unknown }> } } }[] }
  }
  const run = async (ref: string) => {
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/run/${ref}`,
      headers: internalHeaders(),
      payload: { input_value: 'hi', session_id: 's' },
    })
    return res
  }
  const senderName = (res: { json(): unknown }) =>
    (res.json() as { outputs: { outputs: { results: { message: { sender_name: string } } }[] }[] }).outputs[0]
      ?.outputs[0]?.results.message.sender_name

  const first = await run(flow.id)
  t.equal(first.statusCode, 200)
  const before = senderName(first)
  t.equal(senderName(await run('cached-echo')), before, 'by endpoint name, the same flow')

  // change the TextInput that names the sender, as a flow author would
  const data = structuredClone(flow.data)
  const textInput = data.nodes.find((node) => node.data.type === 'TextInput')
  if (!textInput?.data.node.template.input_value) throw new Error('the fixture has a TextInput with input_value')
  textInput.data.node.template.input_value.value = 'Renamed Bot'
  const patched = await app.inject({
    method: 'PATCH',
    url: `/api/v1/flows/${flow.id}`,
    headers: internalHeaders(),
    payload: { data },
  })
  t.equal(patched.statusCode, 200)
  t.not(before, 'Renamed Bot')
  t.equal(senderName(await run(flow.id)), 'Renamed Bot', 'the next run uses the updated flow')
  t.equal(senderName(await run('cached-echo')), 'Renamed Bot')

  t.equal((await run(flow.id)).statusCode, 200)
  t.equal(
    (await app.inject({ method: 'GET', url: `/api/v1/run/${flow.id}`, headers: internalHeaders() })).statusCode,
    404,
    'GET is not a run',
  )
  const other = await app.inject({
    method: 'POST',
    url: `/api/v1/run/${flow.id}`,
    headers: internalHeaders('tenant-b'),
    payload: { input_value: 'hi' },
  })
  t.equal(other.statusCode, 404, 'a cached flow is still checked against the tenant')

  const deleted = await app.inject({ method: 'DELETE', url: `/api/v1/flows/${flow.id}`, headers: internalHeaders() })
  t.equal(deleted.statusCode, 204)
  t.equal((await run(flow.id)).statusCode, 404, 'a deleted flow is not run from the cache')
})
