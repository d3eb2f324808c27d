// Every size limit of the run-service (issue 6, "Limits"): for each, a request just under it is accepted, one
// just over it is answered with a clear 4xx whose `{ detail, code }` names the limit, and the limit follows its
// variable (each app here sets a small one). Session IDs are fixed by the spec (§2: 1–255 code points).
import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import { exceedsJsonLimits } from '@session-runtime/service-kit'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { buildTestApp, INTERNAL_TOKEN, internalHeaders, startMessageStore, type TestApp } from './helpers/app.js'
import { type FlowJson, fixture, type NodeJson } from './helpers/flows.js'

// Five apps: on embedded PGlite (no TEST_DATABASE_URL) each takes seconds to boot, more than tap's 30 s default.
t.setTimeout(180_000)

const headers = { ...internalHeaders(), 'content-type': 'application/json' }

/** `[[…[]…]]`: an array `levels` deep (1 = `[]`). */
const nested = (levels: number): unknown => {
  let value: unknown = []
  for (let i = 1; i < levels; i++) value = [value]
  return value
}

/** An object `levels` deep whose innermost value is a string (1 = `{ "k": "v" }`). */
const nestedObject = (levels: number): unknown => {
  let value: unknown = { k: 'v' }
  for (let i = 1; i < levels; i++) value = { k: value }
  return value
}

/** Depth of nested objects and arrays (a scalar is 0), the way the limits count it. */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  let deepest = 0
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child))
  return deepest + 1
}

/** A sticky note: a node of `data.nodes` (counted by the limit) that the engine skips. */
const note = (i: number): NodeJson => ({
  id: `note-${i}`,
  type: 'noteNode',
  data: { id: `note-${i}`, node: { display_name: '', template: {} } },
})

type FlowBody = { name: string; data: FlowJson['data'] & Record<string, unknown> }

/** The simple fixture (3 nodes, 2 edges) as an import body. */
function simpleBody(): FlowBody {
  return { name: 'simple', data: fixture('simple').data }
}

/** The basic-prompting fixture (6 nodes, 3 edges) as an import body. */
function basicBody(): FlowBody {
  return { name: 'basic', data: fixture('basic').data }
}

const importFlow = (app: TestApp, body: unknown) =>
  app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: JSON.stringify(body) })
const patchFlow = (app: TestApp, id: string, body: unknown) =>
  app.inject({ method: 'PATCH', url: `/api/v1/flows/${id}`, headers, payload: JSON.stringify(body) })

t.test('exceedsJsonLimits counts depth and entries without recursion', async (t) => {
  t.equal(exceedsJsonLimits(undefined, { maxDepth: 1 }), undefined)
  t.equal(exceedsJsonLimits('x', { maxDepth: 1 }), undefined)
  t.equal(exceedsJsonLimits({}, { maxDepth: 1 }), undefined)
  t.equal(exceedsJsonLimits({ a: {} }, { maxDepth: 1 }), 'depth')
  t.equal(exceedsJsonLimits({ a: { b: [1] } }, { maxDepth: 3 }), undefined)
  t.equal(exceedsJsonLimits({ a: { b: [[]] } }, { maxDepth: 3 }), 'depth')
  t.equal(exceedsJsonLimits({ a: 1, b: [1, 2] }, { maxDepth: 9, maxEntries: 4 }), undefined)
  t.equal(exceedsJsonLimits({ a: 1, b: [1, 2, 3] }, { maxDepth: 9, maxEntries: 4 }), 'entries')
  // far deeper than any call stack: no RangeError
  t.equal(exceedsJsonLimits(nested(200_000), { maxDepth: 1000 }), 'depth')
  t.equal(exceedsJsonLimits(nested(200_000), { maxDepth: 200_000 }), undefined)
})

t.test('the limits have generous defaults, each from its variable', async (t) => {
  const config = loadConfig({ INTERNAL_TOKEN } as NodeJS.ProcessEnv)
  t.match(config, {
    FLOWS_BODY_LIMIT_BYTES: 8 * 1024 * 1024,
    RUN_BODY_LIMIT_BYTES: 1024 * 1024,
    RUN_INPUT_MAX_CHARS: 100_000,
    FLOW_MAX_NODES: 500,
    FLOW_MAX_EDGES: 2000,
    FLOW_MAX_DEPTH: 64,
    RUN_TWEAKS_MAX_DEPTH: 8,
    RUN_TWEAKS_MAX_KEYS: 1000,
  })
  t.throws(() => loadConfig({ INTERNAL_TOKEN, FLOW_MAX_NODES: '0' } as NodeJS.ProcessEnv), /FLOW_MAX_NODES/)
  t.throws(() => loadConfig({ INTERNAL_TOKEN, FLOW_MAX_DEPTH: '5000' } as NodeJS.ProcessEnv), /FLOW_MAX_DEPTH/)
  t.throws(() => loadConfig({ INTERNAL_TOKEN, RUN_TWEAKS_MAX_KEYS: 'x' } as NodeJS.ProcessEnv), /RUN_TWEAKS_MAX_KEYS/)
})

t.test('with the default limits: a flow of 500 nodes is stored, 501 and very deep bodies are refused', async (t) => {
  const app = await buildTestApp(t, { env: { EXAMPLE_FLOWS: 'false' } })
  const at = simpleBody()
  at.data.nodes.push(...Array.from({ length: 500 - at.data.nodes.length }, (_, i) => note(i)))
  const ok = await importFlow(app, at)
  t.equal(ok.statusCode, 201, ok.body.slice(0, 300))

  const over = simpleBody()
  over.data.nodes.push(...Array.from({ length: 501 - over.data.nodes.length }, (_, i) => note(i)))
  const res = await importFlow(app, over)
  t.equal(res.statusCode, 413)
  t.strictSame(res.json(), {
    detail: 'data.nodes has 501 nodes, more than the limit of 500 nodes per flow',
    code: 'RUNSVC_FLOW_TOO_MANY_NODES',
  })

  // Before the limit, a body nested 5,000 levels deep overflowed the call stack (JSON.stringify when storing): a 500.
  for (const levels of [5_000, 100_000]) {
    const deep = await app.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers,
      payload: `{"name":"deep","data":{"nodes":[],"edges":[],"extra":${'['.repeat(levels)}${']'.repeat(levels)}}}`,
    })
    t.equal(deep.statusCode, 422, `${levels} levels`)
    t.strictSame(deep.json(), {
      detail: 'The flow body nests objects and arrays deeper than the limit of 64 levels',
      code: 'RUNSVC_FLOW_TOO_DEEP',
    })
  }
  const list = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers })
  t.equal(list.json().length, 1, 'only the accepted flow was stored')

  // tweaks far deeper than a call stack (or JSON.stringify) could follow, refused before the flow is looked up
  const levels = 100_000
  const tweaks = await app.inject({
    method: 'POST',
    url: '/api/v1/run/no-such-flow',
    headers,
    payload: `{"input_value":"hi","tweaks":{"x":${'['.repeat(levels)}${']'.repeat(levels)}}}`,
  })
  t.equal(tweaks.statusCode, 422)
  t.strictSame(tweaks.json(), {
    detail: 'body/tweaks nests objects and arrays deeper than the limit of 8 levels',
    code: 'RUNSVC_TWEAKS_TOO_DEEP',
  })
})

t.test('flow size limits follow FLOW_MAX_NODES, FLOW_MAX_EDGES, FLOW_MAX_DEPTH on import and update', async (t) => {
  const base = basicBody()
  const maxDepth = depthOf(base) + 2
  const app = await buildTestApp(t, {
    env: { FLOW_MAX_NODES: '6', FLOW_MAX_EDGES: '3', FLOW_MAX_DEPTH: String(maxDepth), EXAMPLE_FLOWS: 'false' },
  })

  // body → data → extra: 2 levels above `extra`'s own
  const withExtra = (levels: number) => {
    const body = basicBody()
    body.data.extra = nested(levels - 2)
    t.equal(depthOf(body), levels, `a body ${levels} levels deep`)
    return body
  }
  const withNodes = (count: number) => {
    const body = basicBody()
    body.data.nodes.push(...Array.from({ length: count - body.data.nodes.length }, (_, i) => note(i)))
    return body
  }
  const withEdges = (count: number) => {
    const body = basicBody()
    const [first] = body.data.edges as Array<Record<string, unknown>>
    while (body.data.edges.length < count) body.data.edges.push({ ...first, id: `copy-${body.data.edges.length}` })
    return body
  }

  const cases = [
    {
      limit: 'nodes',
      under: withNodes(6),
      over: withNodes(7),
      status: 413,
      error: {
        detail: 'data.nodes has 7 nodes, more than the limit of 6 nodes per flow',
        code: 'RUNSVC_FLOW_TOO_MANY_NODES',
      },
    },
    {
      limit: 'edges',
      under: withEdges(3), // the fixture's own 3 edges
      over: withEdges(4),
      status: 413,
      error: {
        detail: 'data.edges has 4 edges, more than the limit of 3 edges per flow',
        code: 'RUNSVC_FLOW_TOO_MANY_EDGES',
      },
    },
    {
      limit: 'depth',
      under: withExtra(maxDepth),
      over: withExtra(maxDepth + 1),
      status: 422,
      error: {
        detail: `The flow body nests objects and arrays deeper than the limit of ${maxDepth} levels`,
        code: 'RUNSVC_FLOW_TOO_DEEP',
      },
    },
  ]

  const stored = await importFlow(app, base)
  t.equal(stored.statusCode, 201)
  const id = stored.json().id as string
  for (const c of cases) {
    const under = await importFlow(app, c.under)
    t.equal(under.statusCode, 201, `import: ${c.limit} at the limit is accepted (${under.body.slice(0, 200)})`)
    const over = await importFlow(app, c.over)
    t.equal(over.statusCode, c.status, `import: ${c.limit} over the limit`)
    t.strictSame(over.json(), c.error)

    const patched = await patchFlow(app, id, { data: c.under.data })
    t.equal(patched.statusCode, 200, `update: ${c.limit} at the limit is accepted (${patched.body.slice(0, 200)})`)
    const refused = await patchFlow(app, id, { name: 'changed', data: c.over.data })
    t.equal(refused.statusCode, c.status, `update: ${c.limit} over the limit`)
    t.strictSame(refused.json(), c.error)
  }
  const after = await app.inject({ method: 'GET', url: `/api/v1/flows/${id}`, headers })
  t.equal(after.json().name, 'basic', 'a refused update changed nothing')
  t.strictSame(after.json().data, cases.at(-1)?.under.data)
  const list = await app.inject({ method: 'GET', url: '/api/v1/flows/', headers })
  t.equal(list.json().length, 1 + cases.length, 'no refused flow was stored')
})

t.test('FLOWS_BODY_LIMIT_BYTES: a body of exactly the limit is stored, one byte more is a 413', async (t) => {
  const payload = JSON.stringify(simpleBody())
  const limit = Buffer.byteLength(payload)
  const app = await buildTestApp(t, { env: { FLOWS_BODY_LIMIT_BYTES: String(limit) } })
  const ok = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload })
  t.equal(ok.statusCode, 201)
  const over = await app.inject({ method: 'POST', url: '/api/v1/flows/', headers, payload: `${payload} ` })
  t.equal(over.statusCode, 413)
  t.strictSame(over.json(), {
    detail: `Request body is larger than the limit of ${limit} bytes`,
    code: 'RUNSVC_PAYLOAD_TOO_LARGE',
  })
})

t.test('run limits: body bytes, input_value, tweaks depth and keys, session ID length', async (t) => {
  const store = await startMessageStore(t)
  const app = await buildTestApp(t, {
    messageStoreUrl: store.url,
    env: {
      RUN_BODY_LIMIT_BYTES: '2048',
      RUN_INPUT_MAX_CHARS: '10',
      RUN_TWEAKS_MAX_DEPTH: '3',
      RUN_TWEAKS_MAX_KEYS: '5',
      EXAMPLE_FLOWS: 'false',
    },
  })
  const created = await importFlow(app, simpleBody())
  t.equal(created.statusCode, 201)
  const id = created.json().id as string
  const run = (payload: string) => app.inject({ method: 'POST', url: `/api/v1/run/${id}`, headers, payload })
  const runJson = (body: unknown) => run(JSON.stringify(body))

  await t.test('RUN_BODY_LIMIT_BYTES', async (t) => {
    // padded by a top-level tweak no node has (ignored), so only the body size differs
    const padded = (bytes: number) => {
      const shell = JSON.stringify({ input_value: 'hi', tweaks: { pad: '' } })
      return JSON.stringify({ input_value: 'hi', tweaks: { pad: 'x'.repeat(bytes - shell.length) } })
    }
    t.equal(padded(2048).length, 2048)
    const ok = await run(padded(2048))
    t.equal(ok.statusCode, 200, ok.body.slice(0, 200))
    const over = await run(padded(2049))
    t.equal(over.statusCode, 413)
    t.strictSame(over.json(), {
      detail: 'Request body is larger than the limit of 2048 bytes',
      code: 'RUNSVC_PAYLOAD_TOO_LARGE',
    })
  })

  await t.test('RUN_INPUT_MAX_CHARS, in code points', async (t) => {
    const ok = await runJson({ input_value: '😀'.repeat(10) })
    t.equal(ok.statusCode, 200, '10 code points (20 UTF-16 units)')
    t.equal(ok.json().outputs[0].inputs.input_value, '😀'.repeat(10))
    const over = await runJson({ input_value: 'a'.repeat(11) })
    t.equal(over.statusCode, 413)
    t.strictSame(over.json(), {
      detail: 'input_value is longer than the limit of 10 characters',
      code: 'RUNSVC_INPUT_TOO_LARGE',
    })
  })

  await t.test('RUN_TWEAKS_MAX_DEPTH', async (t) => {
    // a node key no node has is ignored, so the run itself is the same
    const ok = await runJson({ input_value: 'hi', tweaks: { 'no-such-node': { field: { a: 1 } } } })
    t.equal(ok.statusCode, 200, '3 levels')
    const okArray = await runJson({ input_value: 'hi', tweaks: { 'no-such-node': { field: [1] } } })
    t.equal(okArray.statusCode, 200, '3 levels, the last an array')
    const deepest = `{"input_value":"hi","tweaks":{"x":${'['.repeat(900)}${']'.repeat(900)}}}`
    for (const payload of [
      JSON.stringify({ input_value: 'hi', tweaks: { 'no-such-node': { field: { a: {} } } } }),
      JSON.stringify({ input_value: 'hi', tweaks: { field: nestedObject(3) } }),
      deepest,
    ]) {
      const over = await run(payload)
      t.equal(over.statusCode, 422)
      t.strictSame(over.json(), {
        detail: 'body/tweaks nests objects and arrays deeper than the limit of 3 levels',
        code: 'RUNSVC_TWEAKS_TOO_DEEP',
      })
    }
  })

  await t.test('RUN_TWEAKS_MAX_KEYS, keys and array items at every level', async (t) => {
    const ok = await runJson({ input_value: 'hi', tweaks: { 'no-such-node': { a: 1, b: 2, c: 3, d: 4 } } })
    t.equal(ok.statusCode, 200, '1 + 4 keys')
    const okItems = await runJson({ input_value: 'hi', tweaks: { x: [1, 2, 3, 4] } })
    t.equal(okItems.statusCode, 200, '1 key + 4 items')
    for (const tweaks of [{ 'no-such-node': { a: 1, b: 2, c: 3, d: 4, e: 5 } }, { x: [1, 2, 3, 4, 5] }]) {
      const over = await runJson({ input_value: 'hi', tweaks })
      t.equal(over.statusCode, 422)
      t.strictSame(over.json(), {
        detail: 'body/tweaks has more than the limit of 5 keys and array items (counted at every level)',
        code: 'RUNSVC_TWEAKS_TOO_MANY_KEYS',
      })
    }
  })

  await t.test('session IDs: 1–255 code points, fixed by the spec (§2)', async (t) => {
    const longest = '😀'.repeat(255)
    const ok = await runJson({ input_value: 'hi', session_id: longest })
    t.equal(ok.statusCode, 200)
    t.equal(ok.json().session_id, longest)
    const over = await runJson({ input_value: 'hi', session_id: 'a'.repeat(256) })
    t.equal(over.statusCode, 422)
    t.equal(over.json().code, 'RUNSVC_VALIDATION')
    t.match(over.json().detail, /session_id/)
    const tweak = await runJson({ input_value: 'hi', tweaks: { session_id: 'a'.repeat(256) } })
    t.equal(tweak.statusCode, 422, 'a session_id tweak too')
    t.match(tweak.json(), { code: 'RUNSVC_VALIDATION', detail: /session_id/ })
  })

  t.equal(
    (await app.inject({ method: 'GET', url: '/health', headers: { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN } }))
      .statusCode,
    200,
    'the service still answers',
  )
  t.ok(TENANT_HEADER)
})
