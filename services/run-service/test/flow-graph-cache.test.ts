import { randomUUID } from 'node:crypto'
import type { Queryable } from '@session-runtime/db'
import t from 'tap'
import { FlowGraphCache, RunnableFlows } from '../src/domain/flow-graph-cache.js'
import { createFlow, FlowNotFoundError, updateFlow } from '../src/domain/flow-repository.js'
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

t.test("RunnableFlows: lookups of runs at once share statements; each finds its own tenant's flow", async (t) => {
  const app = await buildTestApp(t)
  const statements: string[] = []
  const db: Queryable = {
    query(sql, params) {
      statements.push(sql)
      return app.db.query(sql, params)
    },
  }
  const [a, b] = [`tenant-a-${randomUUID()}`, `tenant-b-${randomUUID()}`]
  const { flow: flowA } = await createFlow(app.db, a, {
    name: 'echo',
    description: '',
    ...fixture('simple'),
    endpoint_name: 'echo',
  })
  const { flow: flowB } = await createFlow(app.db, b, {
    name: 'echo',
    description: '',
    ...fixture('simple'),
    endpoint_name: 'echo',
  })
  const flows = new RunnableFlows(db, builtInComponents, new FlowGraphCache(10))
  await flows.load(a, flowA.id) // warm the cache: from here on a load is its version lookup only

  statements.length = 0
  const refs: [string, string, string | undefined][] = [
    [a, flowA.id, flowA.id],
    [a, flowA.id.toUpperCase(), flowA.id],
    [a, 'echo', flowA.id],
    [b, 'echo', flowB.id],
    [b, flowB.id, flowB.id],
    [b, flowA.id, undefined], // another tenant's flow
    [a, 'no-such-endpoint', undefined],
    [a, randomUUID(), undefined],
  ]
  const loads = Array.from({ length: 5 }, () => refs).flat()
  const outcomes = await Promise.allSettled(loads.map(([tenant, ref]) => flows.load(tenant, ref)))
  outcomes.forEach((outcome, i) => {
    const [tenant, ref, expected] = loads[i] as (typeof refs)[number]
    if (expected === undefined) {
      t.ok(
        outcome.status === 'rejected' && outcome.reason instanceof FlowNotFoundError,
        `${tenant.slice(0, 8)} ${ref}: not found`,
      )
    } else t.equal(outcome.status === 'fulfilled' && outcome.value.id, expected, `${tenant.slice(0, 8)} ${ref}`)
  })
  t.ok(statements.length < loads.length, `coalesced: ${statements.length} statements for ${loads.length} loads`)

  // an update is seen by the next load (a new row version: the graph is parsed again)
  const data = structuredClone(flowA.data) as typeof flowA.data & { nodes: unknown[] }
  const before = await flows.load(a, 'echo')
  await updateFlow(app.db, a, flowA.id, { data: { ...data, nodes: data.nodes.slice() } })
  const after = await flows.load(a, 'echo')
  t.not(after.graph, before.graph, 'the updated flow is loaded again, not served from the cache')
})
