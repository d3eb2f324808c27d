// Property-based fuzzing (fast-check) of every public route of the gateway, in front of the real run-service
// and message-store (in process; Postgres when TEST_DATABASE_URL is set, else PGlite). The routes come from the
// gateway's own /docs/json, so a new route is fuzzed as soon as it is documented, and the test fails until it
// has an entry in `routes` below. Each request is random in its method, path segments, query string, headers
// (content type, API key) and body (JSON of any shape, wrong types, long and huge strings, deep nesting, NUL,
// lone surrogates, raw non-JSON). Invariants: no answer is a 5xx (no dependency is down here), every 4xx is
// the `{ detail, code }` envelope, a streamed run ends with one `end` or `error` event and never fails as a
// 5xx inside the stream; afterwards the stack is ready, a normal run works, and the heap is bounded.
//
// Reproduce a failure: fast-check prints the seed and path; `FUZZ_SEED=<seed>` replays the same inputs.
// `FUZZ_RUNS=<n>` changes the runs per route (default below), `FUZZ_SEED=random` explores new inputs,
// `FUZZ_DEBUG='POST /api/v1/run'` prints every answer of the routes whose name contains it.
import { readFileSync } from 'node:fs'
import v8 from 'node:v8'
import vm from 'node:vm'
import { startFakeModel } from '@session-runtime/stack'
import fc from 'fast-check'
import t from 'tap'
import { KEY_A, KEY_B, startStack } from '../../services/gateway/test/helpers/stack.js'

// A forced GC for the memory check, without a per-file node flag (tap's node-arg is global).
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const SEED = process.env.FUZZ_SEED === 'random' ? Date.now() : Number(process.env.FUZZ_SEED ?? 20261127)
const RUNS = Number(process.env.FUZZ_RUNS ?? 200)
/** Per route group: fast-check stops generating (and shrinking) after this; a run cut short still passes. */
const TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? 2_500)
const MB = 1024 * 1024
/** Longest URL sent: a client cannot send a request line and headers over Node's 16 KiB. */
const URL_MAX = 14_000
/** Growth of the heap (after a forced GC) allowed over the whole fuzz run: see docs/reliability.md, Fuzz. */
const HEAP_GROWTH_LIMIT = 64 * MB

const fixturesDir = process.env.FIXTURES_DIR ?? new URL('../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixturesDir}/${name}.json`, 'utf8'))

const model = await startFakeModel(t)
const { gateway, runService, seen } = await startStack(t, { modelUrl: model.url })

// The status of every streamed run, as the run-service counts it: a 5xx inside a 200 stream is caught too.
const streamStatuses: number[] = []
const { finished } = runService.runMetrics
runService.runMetrics.finished = (run) => {
  if (run.stream) streamStatuses.push(run.status)
  finished.call(runService.runMetrics, run)
}

// --- known values: requests use them often, so they reach the handlers behind the validation ---
type PoolName = 'flow' | 'message' | 'session' | 'endpoint' | 'cursor'
const pools: Record<PoolName, string[]> = { flow: [], message: [], session: [], endpoint: [], cursor: [] }
const POOL_MAX = 64
function remember(pool: PoolName, value: unknown) {
  if (typeof value !== 'string' || value === '' || pools[pool].includes(value) || runFlows.includes(value)) return
  pools[pool].push(value)
  if (pools[pool].length > POOL_MAX) pools[pool].splice(4, 1) // the first ones (seeded) stay
}

/** IDs and endpoint names of the flows only runs use. */
const runFlows: string[] = []
async function seed() {
  const asA = { 'x-api-key': KEY_A }
  for (const [name, key, endpoint] of [
    ['langflow-simple-api-test', KEY_A, 'fuzz-simple'],
    ['langflow-memory-chatbot', KEY_A, 'fuzz-memory'],
    ['langflow-basic-prompting', KEY_B, 'fuzz-basic'],
    // only run (never patched or deleted by the fuzz), so that runs get past the flow lookup
    ['langflow-simple-api-test', KEY_A, 'fuzz-run-simple'],
    ['langflow-memory-chatbot', KEY_A, 'fuzz-run-memory'],
    ['langflow-basic-prompting', KEY_B, 'fuzz-run-basic'],
  ] as const) {
    const { id: _id, ...flow } = fixture(name)
    const res = await gateway.inject({
      method: 'POST',
      url: '/api/v1/flows/',
      headers: { 'x-api-key': key },
      payload: { ...flow, endpoint_name: endpoint },
    })
    if (res.statusCode !== 201) throw new Error(`seed ${name}: ${res.statusCode} ${res.body}`)
    if (endpoint.startsWith('fuzz-run-')) runFlows.push(res.json().id, endpoint)
    else {
      remember('flow', res.json().id)
      remember('endpoint', endpoint)
    }
  }
  for (const session of ['fuzz-seed', 'fuzz seed/2 é😀']) {
    const res = await gateway.inject({
      method: 'POST',
      url: `/api/v1/run/${runFlows[2]}`,
      headers: asA,
      payload: { input_value: 'hello', session_id: session },
    })
    if (res.statusCode !== 200) throw new Error(`seed run: ${res.statusCode} ${res.body}`)
    remember('session', session)
  }
  const messages = await gateway.inject({ url: '/api/v1/monitor/messages?limit=2', headers: asA })
  for (const message of messages.json() as { id: string }[]) remember('message', message.id)
  remember('cursor', messages.headers['x-next-cursor'])
}
await seed()
/** The values seeded above (the pools change while the fuzz runs). */
const seeded = structuredClone(pools)

// --- arbitraries ---
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code))
const nasty = fc.constantFrom(
  '\u0000',
  '..',
  '/',
  '\\',
  '%',
  '%00',
  '"',
  "'",
  "' OR 1=1 --",
  '\u202e',
  '\ufeff',
  '😀',
  'é',
  '\r\n',
  ' ',
  '?',
  '#',
  '&',
  '=',
  '+',
  '__proto__',
  'constructor',
  '$ne',
  'null',
)
const nastyUnit = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), loneSurrogate, nasty)
/** Strings of every kind: printable ASCII, any code point, lone surrogates and special characters. */
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: nastyUnit, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
)
/** Long, yet within a request line once percent-encoded (12 bytes a code point at most): Node's limit is 16 KiB. */
const longText = fc
  .tuple(fc.integer({ min: 250, max: 1_000 }), fc.constantFrom('a', 'é', '😀', '\u0000', ' '))
  .map(([n, c]) => c.repeat(n))
/** Within the gateway's body limit (8 MiB), above most of the services' own limits. */
const hugeText = fc.integer({ min: 100_000, max: 3 * MB }).map((n) => 'x'.repeat(n))
const anyText = fc.oneof(
  { weight: 8, arbitrary: text },
  { weight: 2, arbitrary: longText },
  { weight: 1, arbitrary: hugeText },
)
const json = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 3, stringUnit: nastyUnit }),
  fc.anything({ maxDepth: 2, withNullPrototype: false }).map((v) => JSON.parse(JSON.stringify(v ?? null))),
)
/** A value of the wrong type (or the right one) for any field. */
const anyValue = fc.oneof(
  { weight: 3, arbitrary: anyText },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 53, '', [], {}) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 2, arbitrary: json },
)

/** JSON text nested `depth` levels deep (built as text: no recursion here). */
const deepJson = fc
  .tuple(fc.integer({ min: 16, max: 200_000 }), fc.constantFrom('array', 'object', 'mixed'))
  .map(([depth, kind]) => {
    if (kind === 'array') return `${'['.repeat(depth)}${']'.repeat(depth)}`
    if (kind === 'object') return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    return `${'{"a":['.repeat(depth)}${']}'.repeat(depth)}`
  })
const DEEP = '"__deep__"'
/** A body: JSON text (of a value, or with a deep value spliced in), raw bytes, or nothing. */
type Body = { json: unknown } | { deep: unknown; value: string } | { raw: string } | { bytes: Uint8Array } | undefined
const rawJunk: fc.Arbitrary<Body> = fc
  .oneof(
    fc.constantFrom(
      '{',
      '[1,',
      '{"a":1,}',
      'nul',
      'NaN',
      '1e999999',
      '"unterminated',
      '\ufeff{}',
      '{"__proto__":{"polluted":1}}',
      '{"constructor":{"prototype":{"polluted":1}}}',
      '{"a":1,"a":2}',
      '\u0000',
      '',
      ' ',
      'null',
      '0',
      '"string"',
      '[]',
      '{"input_value":"\\ud800"}',
      '{"input_value":"\\u0000"}',
    ),
    text,
  )
  .map((raw) => ({ raw }))
const genericBody: fc.Arbitrary<Body> = fc.oneof(
  { weight: 4, arbitrary: json.map((value) => ({ json: value })) },
  { weight: 2, arbitrary: rawJunk },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })) },
  { weight: 1, arbitrary: deepJson.map((value) => ({ deep: DEEP, value })) },
  { weight: 1, arbitrary: fc.constant(undefined) },
)
/** Some fields of a record, each of the right type or not; sometimes with a deep value in one field. */
function someFields(fields: Record<string, fc.Arbitrary<unknown>>, deepField?: string): fc.Arbitrary<Body> {
  const wrongOrRight = Object.fromEntries(
    Object.entries(fields).map(([key, right]) => [key, fc.oneof({ weight: 9, arbitrary: right }, anyValue)]),
  )
  const extra = fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, fc.dictionary(text, anyValue, { maxKeys: 3 }))
  const record = fc.record({ ...wrongOrRight, extra }, { requiredKeys: [] })
  const flat = record.map(({ extra, ...value }) => ({ json: { ...(extra as object), ...value } }))
  if (!deepField) return flat
  return fc.oneof(
    { weight: 5, arbitrary: flat },
    {
      weight: 1,
      arbitrary: fc.tuple(record, deepJson).map(([{ extra: _extra, ...value }, deep]) => ({
        deep: { ...value, [deepField]: '__deep__' },
        value: deep,
      })),
    },
  )
}
const routeBody = (specific: fc.Arbitrary<Body>) =>
  fc.oneof({ weight: 6, arbitrary: specific }, { weight: 3, arbitrary: genericBody })

/** A value of a pool, picked when the request is made (the pools grow while the fuzz runs). */
class Known {
  constructor(
    readonly pool: PoolName,
    readonly index: number,
  ) {}
  get value() {
    const values = pools[this.pool]
    return values.length === 0 ? 'none' : (values[this.index % values.length] as string)
  }
  toString() {
    return `${this.pool}#${this.index}`
  }
}
const known = (pool: PoolName) => fc.nat().map((i) => new Known(pool, i))
type Part = string | Known
const partValue = (part: Part) => (part instanceof Known ? part.value : part)
/** Percent-encodes like encodeURIComponent, but a lone surrogate too (as U+FFFD: a URL is bytes). */
const pct = (c: string) => [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
const encode = (value: string) => value.replace(/[^A-Za-z0-9\-_.!~*'()]/gu, pct)

const sessionId = fc.oneof({ weight: 3, arbitrary: known('session') }, text, longText, fc.constant(''))
const uuidish = fc.oneof(
  { weight: 2, arbitrary: fc.uuid() },
  fc.uuid().map((u) => u.toUpperCase()),
  text,
)
const flowBody = (fields: { name?: boolean }) => {
  const { id: _id, ...base } = fixture('langflow-simple-api-test')
  // a real flow with one random change somewhere (a node's field, an edge, a type): exercises the graph checks
  const paths: (string | number)[][] = []
  const walk = (value: unknown, path: (string | number)[]) => {
    paths.push(path)
    if (value && typeof value === 'object' && path.length < 8)
      for (const [k, v] of Object.entries(value)) walk(v, [...path, Array.isArray(value) ? Number(k) : k])
  }
  walk(base.data, ['data'])
  const mutated = fc
    .tuple(
      fc.nat({ max: paths.length - 1 }),
      anyValue,
      fc.boolean(),
      text,
      fc.oneof(
        { weight: 3, arbitrary: fc.constant(undefined) },
        { weight: 2, arbitrary: fc.stringMatching(/^[a-zA-Z0-9_-]{1,12}$/) },
        text,
      ),
    )
    .map(([i, value, renamed, name, endpoint]) => {
      const flow = structuredClone({ ...base, name: renamed ? name : base.name, endpoint_name: endpoint })
      const path = paths[i] as (string | number)[]
      let target: Record<string | number, unknown> = flow
      for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>
      target[path.at(-1) as string] = value
      return { json: flow }
    })
  return fc.oneof(
    { weight: 3, arbitrary: mutated },
    someFields(
      {
        ...(fields.name ? { name: text } : {}),
        description: fc.option(anyText),
        endpoint_name: fc.option(fc.oneof(fc.stringMatching(/^[a-zA-Z0-9_-]{0,20}$/), text, known('endpoint'))),
        data: fc.record({ nodes: fc.array(json, { maxLength: 4 }), edges: fc.array(json, { maxLength: 4 }) }),
        id: uuidish,
      },
      'data',
    ),
  )
}

/** A route's own arbitraries; every documented route needs an entry (null: it takes no body). */
interface RouteFuzz {
  body: fc.Arbitrary<Body> | null
  /** Path parameter values, by name (default: any segment). */
  params?: Record<string, fc.Arbitrary<Part>>
}
const routes: Record<string, RouteFuzz> = {
  'GET /health': { body: null },
  'GET /ready': { body: null },
  'POST /api/v1/flows/': { body: flowBody({ name: true }) },
  'GET /api/v1/flows/': { body: null },
  'GET /api/v1/flows/{id}': { body: null, params: { id: known('flow') } },
  'PATCH /api/v1/flows/{id}': { body: flowBody({ name: true }), params: { id: known('flow') } },
  'DELETE /api/v1/flows/{id}': { body: null, params: { id: known('flow') } },
  'POST /api/v1/run/{flow_id_or_endpoint_name}': {
    params: {
      flow_id_or_endpoint_name: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...runFlows) },
        known('flow'),
        known('endpoint'),
      ),
    },
    body: fc.oneof(
      fc
        .record(
          {
            input_value: text,
            session_id: fc.oneof(known('session').map(partValue), text),
            output_type: fc.constant('chat'),
          },
          { requiredKeys: ['input_value'] },
        )
        .map((json): Body => ({ json })),
      someFields(
        {
          input_value: fc.option(anyText),
          input_type: fc.option(fc.constantFrom('chat', 'text', 'any', 'CHAT')),
          output_type: fc.option(fc.constantFrom('chat', 'text', 'any', 'debug')),
          output_component: fc.option(fc.oneof(text, fc.constantFrom('ChatOutput', 'ChatOutput-Dx2Eh', 'Chat Output'))),
          session_id: fc.option(sessionId.map(partValue)),
          multitask_strategy: fc.option(
            fc.oneof(fc.constantFrom('enqueue', 'reject', 'ENQUEUE', 'queue', ''), anyValue),
          ),
          tweaks: fc.option(
            fc.dictionary(
              fc.oneof(text, fc.constantFrom('ChatInput', 'ChatOutput', 'Chat Output', 'Memory', 'Prompt')),
              fc.oneof(
                anyValue,
                fc.dictionary(
                  fc.oneof(text, fc.constantFrom('input_value', 'session_id', 'template', 'n_messages', 'model_name')),
                  anyValue,
                  { maxKeys: 4 },
                ),
              ),
              { maxKeys: 4 },
            ),
          ),
        },
        'tweaks',
      ),
    ),
  },
  'POST /api/v1/responses': {
    body: fc.oneof(
      fc
        .record(
          {
            model: fc.oneof(
              { weight: 4, arbitrary: fc.constantFrom(...runFlows) },
              known('flow').map(partValue),
              known('endpoint').map(partValue),
              text,
            ),
            input: text,
            stream: fc.boolean(),
            previous_response_id: fc.option(fc.oneof(known('session').map(partValue), text)),
          },
          { requiredKeys: ['model', 'input'] },
        )
        .map((json): Body => ({ json })),
      someFields({
        model: fc.oneof(fc.constantFrom(...runFlows), text),
        input: fc.option(anyText),
        stream: fc.option(fc.boolean()),
        background: fc.boolean(),
        previous_response_id: fc.option(sessionId.map(partValue)),
        tools: fc.option(fc.array(json, { maxLength: 2 })),
        include: fc.option(fc.array(text, { maxLength: 2 })),
      }),
    ),
  },
  'GET /api/v1/monitor/messages': { body: null },
  'GET /api/v1/monitor/messages/search': { body: null },
  'DELETE /api/v1/monitor/messages': {
    body: fc.oneof(
      fc.array(fc.oneof(known('message').map(partValue), uuidish), { maxLength: 20 }).map((json) => ({ json })),
      fc.integer({ min: 9_990, max: 10_010 }).map((n) => ({ json: Array.from({ length: n }, () => 'x') })),
    ),
  },
  'PUT /api/v1/monitor/messages/{id}': {
    params: { id: known('message') },
    body: someFields(
      {
        text: anyText,
        sender: fc.oneof(fc.constantFrom('User', 'Machine'), text),
        sender_name: text,
        session_id: sessionId.map(partValue),
        files: fc.array(text, { maxLength: 3 }),
        edit: fc.boolean(),
        error: fc.boolean(),
        properties: fc.oneof(
          fc.dictionary(text, anyValue, { maxKeys: 4 }),
          // feedback as Langflow stores it, or of another type (422)
          fc.record({ positive_feedback: fc.oneof(fc.boolean(), fc.constant(null), anyValue) }),
        ),
      },
      'properties',
    ),
  },
  'GET /api/v1/monitor/messages/sessions': { body: null },
  'DELETE /api/v1/monitor/messages/sessions': {
    body: fc.array(fc.oneof(sessionId.map(partValue), anyValue), { maxLength: 5 }).map((json) => ({ json }) as Body),
  },
  'GET /api/v1/monitor/sessions': { body: null },
  'PATCH /api/v1/monitor/messages/session/{old_session_id}': { body: null, params: { old_session_id: sessionId } },
  'DELETE /api/v1/monitor/messages/session/{session_id}': { body: null, params: { session_id: sessionId } },
  'PATCH /api/v1/monitor/sessions/{session_id}': {
    params: { session_id: sessionId },
    body: fc
      .oneof(
        fc.record({
          metadata: fc.dictionary(
            fc.oneof(fc.constantFrom('user_id', 'a.b-c_9', 'k'.repeat(64), 'k'.repeat(65)), text),
            fc.oneof(fc.constant(null), text, anyText, anyValue),
            { maxKeys: 20 },
          ),
        }),
        fc.record({ metadata: anyValue }),
        anyValue,
      )
      .map((json): Body => ({ json })),
  },
  'GET /api/v1/monitor/sessions/{session_id}/export': { body: null, params: { session_id: sessionId } },
  'POST /api/v1/monitor/sessions/{session_id}/fork': {
    params: { session_id: sessionId },
    body: someFields({
      new_session_id: sessionId.map(partValue),
      up_to_message_id: fc.oneof(known('message').map(partValue), uuidish),
    }),
  },
  'GET /api/v1/monitor/feedback': { body: null },
  'GET /api/v1/monitor/sessions/export': { body: null },
  'DELETE /api/v1/monitor/sessions': { body: null },
  'GET /api/v1/monitor/retention': { body: null },
  'PUT /api/v1/monitor/retention': {
    body: someFields({
      max_idle_seconds: fc.oneof(
        fc.constant(null),
        fc.integer({ min: -2, max: 2 }),
        fc.constantFrom(2_147_483_647, 2_147_483_648, 1.5, 1e308, -0, '60', '1'),
        fc.integer(),
        // Long limits only: a short one would let the fuzzed sweeps delete the sessions other routes use.
        fc.integer({ min: 86_400, max: 2_147_483_647 }),
      ),
    }),
  },
  'POST /api/v1/monitor/retention/sweep': { body: null },
}

/** A path segment: a known value or anything, percent-encoded or not, long, or a path trick. */
const segment = (own: fc.Arbitrary<Part> | undefined) =>
  fc.oneof(
    { weight: 6, arbitrary: (own ?? text).map((part) => ({ part, encode: true })) },
    { weight: 2, arbitrary: fc.oneof(text, fc.uuid(), longText).map((part) => ({ part, encode: true })) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          '..',
          '.',
          '%2e%2e',
          '%2F',
          '..%2F..%2Finternal',
          '%',
          '%zz',
          '%C0%AE',
          '%00',
          '%E0%A4%A',
          '%ED%A0%80',
          '%FF%FE',
          '~',
          ';',
          '',
          'a'.repeat(12_000),
        )
        .map((part) => ({ part, encode: false })),
    },
  )

interface DocParam {
  in: 'path' | 'query' | 'header'
  name: string
  required?: boolean
  schema: {
    type?: string
    format?: string
    minimum?: number
    maximum?: number
    maxLength?: number
    anyOf?: { enum?: string[] }[]
  }
}

/** Values for a documented query parameter: valid by its schema, at and past its bounds, or anything. */
function queryValue(param: DocParam, clean: boolean): fc.Arbitrary<Part> {
  const { schema, name } = param
  if (clean) {
    // what its schema accepts
    if (schema.format === 'uuid') return fc.oneof(known('flow'), fc.uuid())
    if (schema.anyOf?.some((s) => s.enum)) return fc.constantFrom(...schema.anyOf.flatMap((s) => s.enum ?? []))
    if (schema.type === 'integer')
      return fc.integer({ min: schema.minimum ?? 0, max: schema.maximum ?? 100 }).map(String)
    if (schema.type === 'boolean') return fc.constantFrom('true', 'false')
    if (name === 'cursor') return known('cursor')
    if (name.includes('session'))
      return fc.oneof(
        known('session'),
        text.filter((v) => v.length > 0),
      )
    return text
  }
  const valid: fc.Arbitrary<Part>[] = []
  if (schema.format === 'uuid') valid.push(known('flow'), fc.uuid())
  if (schema.anyOf?.some((s) => s.enum)) {
    const values = schema.anyOf.flatMap((s) => s.enum ?? [])
    valid.push(fc.constantFrom(...values, ...values.map((v) => v.toLowerCase())))
  }
  if (schema.type === 'integer') {
    const min = schema.minimum ?? -1000
    const max = schema.maximum ?? 1000
    valid.push(fc.integer({ min: min - 2, max: max + 2 }).map(String))
    valid.push(fc.constantFrom('1.5', '-0', '1e309', '0x10', '9'.repeat(40), 'NaN', 'Infinity', ' 1'))
  }
  if (schema.type === 'boolean') valid.push(fc.constantFrom('true', 'false', '1', '0', 'TRUE', 'yes', ''))
  if (schema.maxLength) {
    const around = fc.integer({ min: schema.maxLength - 1, max: schema.maxLength + 1 })
    valid.push(fc.tuple(around, fc.constantFrom('a', 'é')).map(([n, c]) => c.repeat(n)))
  }
  if (name.includes('session')) valid.push(known('session'))
  if (name === 'cursor') {
    valid.push(known('cursor'))
    // a real cursor with one character changed, cut, or a base64 of random JSON
    valid.push(
      fc.tuple(known('cursor'), fc.nat(), fc.string({ minLength: 1, maxLength: 1 })).map(([c, i, ch]) => {
        const v = c.value
        return v.slice(0, i % (v.length + 1)) + ch + v.slice((i % (v.length + 1)) + 1)
      }),
      json.map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
    )
  }
  return fc.oneof({ weight: 3, arbitrary: valid.length ? fc.oneof(...valid) : text }, text, longText)
}

/** A query string: the documented parameters (some repeated), others, the API key sometimes, odd syntax. */
function queryString(params: DocParam[], clean: boolean, key: fc.Arbitrary<string | undefined>) {
  const documented = params.filter((p) => p.in === 'query')
  if (clean) {
    // the required parameters, some of the optional ones: all valid by their schema
    const pairs = documented.map((p) => {
      const pair = queryValue(p, true).map((part) => `${encode(p.name)}=${encode(partValue(part))}`)
      return p.required ? pair : fc.option(pair, { nil: undefined })
    })
    return fc.tuple(...pairs).map((parts) => parts.filter((part) => part !== undefined).join('&'))
  }
  const pair = fc.tuple(
    fc.oneof(
      { weight: 4, arbitrary: documented.length ? fc.constantFrom(...documented) : fc.constant(undefined) },
      { weight: clean ? 0 : 1, arbitrary: fc.constant(undefined) },
    ),
    clean ? fc.constant(true) : fc.boolean(),
  )
  return fc
    .tuple(
      fc.array(
        pair.chain(([param, encode]) =>
          fc
            .tuple(
              param ? fc.constant(param.name) : fc.oneof(text, fc.constantFrom('a[]', 'a[b]', 'limit[]', '__proto__')),
              fc.array(param ? queryValue(param, clean) : text, { minLength: 1, maxLength: clean ? 1 : 3 }),
            )
            .map(([name, values]) => ({ name, values, encoded: encode })),
        ),
        { maxLength: documented.length || 2 },
      ),
      key,
      clean ? fc.constant('') : fc.constantFrom('', '', '', '&', '&&', '&=', '&x', '&%', '&a=%zz'),
    )
    .map(([pairs, apiKey, tail]) => {
      const parts = pairs.flatMap(({ name, values, encoded }) =>
        values.map((part) => {
          const value = partValue(part)
          return encoded ? `${encode(name)}=${encode(value)}` : `${name}=${value}`
        }),
      )
      if (apiKey !== undefined) parts.push(`x-api-key=${encode(apiKey)}`)
      const query = parts.join('&') + tail
      // only the characters a client can put in a request line
      return query.replace(/[^\x21-\x7e]/gu, pct)
    })
}

const headerValue = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 }),
  fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 10 }),
)
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'APPLICATION/JSON',
      'application/json;;',
      'application/vnd.api+json',
      'text/plain',
      'text/event-stream',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '',
      '*/*',
    ),
  },
  { weight: 1, arbitrary: headerValue },
  { weight: 1, arbitrary: fc.constant(undefined) },
)
/** Where the key goes: a valid key of tenant A or B (header or query), a wrong one, empty, none, twice. */
type Auth = { header?: string | string[]; query?: string }
const auth: fc.Arbitrary<Auth> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<Auth>({ header: KEY_A }, { header: KEY_B }, { query: KEY_A }) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom<Auth>(
        {},
        { header: '' },
        { query: '' },
        { header: 'wrong-key' },
        { header: `${KEY_A} ` },
        { header: KEY_A.toUpperCase() },
        { header: KEY_A.slice(0, -1) },
        { header: 'wrong', query: KEY_A },
        { header: KEY_B, query: KEY_A },
        { header: [KEY_A, KEY_B] },
      ),
      headerValue.map((header): Auth => ({ header })),
    ),
  },
)
const extraHeaders = fc.dictionary(
  fc.constantFrom(
    'accept',
    'accept-encoding',
    'x-tenant-id',
    'x-internal-token',
    'x-request-id',
    'origin',
    'authorization',
    'cookie',
    'if-none-match',
    'range',
    'x-forwarded-for',
    'expect',
    'connection',
    'keep-alive',
    'upgrade',
    'te',
    'trailer',
    'proxy-connection',
  ),
  fc.oneof(
    fc.constantFrom(
      'text/event-stream',
      'gzip, br',
      '*/*',
      'tenant-b',
      'close',
      'keep-alive',
      'bytes=0-1',
      '100-continue',
    ),
    headerValue,
  ),
  { maxKeys: 3 },
)

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const

interface Operation {
  method: string
  path: string
  params: DocParam[]
  hasBody: boolean
}

/** One random request of an operation. */
function requestOf(op: Operation, fuzz: RouteFuzz) {
  const pathParams = op.params.filter((p) => p.in === 'path')
  // a clean request is well-formed but for its values: it gets past the gateway and the parsers, to the handlers
  const clean = fc.record({
    clean: fc.constant(true),
    method: fc.constant(op.method),
    segments: fc.tuple(
      ...pathParams.map((p) => (fuzz.params?.[p.name] ?? text).map((part) => ({ part, encode: true }))),
    ),
    shape: fc.constant(''),
    auth: fc.constantFrom<Auth>({ header: KEY_A }, { header: KEY_B }),
    contentType: fc.constant<string | undefined>(fuzz.body ? 'application/json' : undefined),
    headers: fc.constant<Record<string, string>>({}),
    body: fuzz.body ?? fc.constant<Body>(undefined),
  })
  const messy = fc.record({
    clean: fc.constant(false),
    method: fc.oneof({ weight: 12, arbitrary: fc.constant(op.method) }, fc.constantFrom(...METHODS)),
    segments: fc.tuple(...pathParams.map((p) => segment(fuzz.params?.[p.name]))),
    shape: fc.constantFrom('', '', '', '', '/', '//', '/extra', '?'),
    auth,
    contentType,
    headers: extraHeaders,
    body: fuzz.body ? routeBody(fuzz.body) : fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, genericBody),
  })
  return fc
    .oneof({ weight: 2, arbitrary: clean }, { weight: 3, arbitrary: messy })
    .chain((request) =>
      queryString(op.params, request.clean, fc.constant(request.auth.query)).map((query) => ({ ...request, query })),
    )
}
type RequestValue = ReturnType<typeof requestOf> extends fc.Arbitrary<infer R> ? R : never

function payloadOf(body: Body): string | Buffer | undefined {
  if (body === undefined) return undefined
  if ('json' in body) return JSON.stringify(body.json) ?? 'null'
  if ('deep' in body) return JSON.stringify(body.deep).replace(DEEP, body.value)
  if ('raw' in body) return body.raw
  return Buffer.from(body.bytes)
}

const short = (value: string, max = 300) => (value.length > max ? `${value.slice(0, max)}…(${value.length})` : value)

let requests = 0
/** Flows the fuzz created: all but the last few are deleted after each route, so listing them stays fast. */
const created: string[] = []
async function trimFlows() {
  for (const id of created.splice(0, Math.max(0, created.length - 8))) {
    for (const key of [KEY_A, KEY_B]) {
      await gateway.inject({ method: 'DELETE', url: `/api/v1/flows/${id}`, headers: { 'x-api-key': key } })
    }
    const at = pools.flow.indexOf(id)
    if (at >= seeded.flow.length) pools.flow.splice(at, 1)
  }
}
/** Answers by route and status: shows how deep the requests got (a route answering only 4xx is not fuzzed). */
const statuses: Record<string, Record<number, number>> = {}

/** Sends one request; throws (fails the property) when an invariant breaks. */
async function send(op: Operation, request: RequestValue) {
  let i = 0
  let path = op.path.replace(/\{[^}]+\}/g, () => {
    const segment = request.segments[i++] as { part: Part; encode: boolean }
    const value = partValue(segment.part)
    return segment.encode ? encode(value) : value
  })
  if (request.shape === '?') path += '?'
  else path += request.shape
  // a real client's request line and headers stay under Node's 16 KiB (the gateway's server answers 431 above)
  const query = request.query.slice(0, Math.max(0, URL_MAX - path.length))
  const url = query ? `${path}${path.includes('?') ? '' : '?'}${query}` : path
  const headers: Record<string, string | string[]> = { ...request.headers }
  if (request.auth.header !== undefined) headers['x-api-key'] = request.auth.header
  if (request.contentType !== undefined) headers['content-type'] = request.contentType
  const payload = payloadOf(request.body)
  const streamsBefore = streamStatuses.length

  const res = await gateway.inject({ method: request.method as 'GET', url, headers, payload })
  requests++
  const counts = statuses[`${op.method} ${op.path}`] ?? {}
  counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1
  statuses[`${op.method} ${op.path}`] = counts
  const what = () =>
    `${res.statusCode} ${short(res.body)} <- ${request.method} ${short(url)} ` +
    `(headers ${short(JSON.stringify(headers))}, body ${short(String(payload ?? ''), 2000)})`

  if (process.env.FUZZ_DEBUG && `${op.method} ${op.path}`.includes(process.env.FUZZ_DEBUG))
    console.log(short(what(), 400))
  if (res.statusCode >= 500) throw new Error(`5xx: ${what()}`)
  if (res.statusCode >= 400 && request.method !== 'HEAD') {
    let envelope: { detail?: unknown; code?: unknown } | undefined
    try {
      envelope = res.json()
    } catch {}
    if (typeof envelope?.detail !== 'string' || typeof envelope.code !== 'string')
      throw new Error(`not a {detail, code} envelope: ${what()}`)
  }
  if (res.headers['content-type']?.toString().startsWith('text/event-stream') && op.path === '/api/v1/responses') {
    // OpenAI's response events: `event:` and `data:` lines, one completed or failed last, then `data: [DONE]`
    const frames = res.body.split('\n\n').filter((frame) => frame.trim() !== '')
    const types = frames
      .slice(0, -1)
      .map((frame) => (JSON.parse(frame.split('\ndata: ')[1] ?? '') as { type: string }).type)
    const last = types.filter((type) => type === 'response.completed' || type === 'response.failed')
    if (frames.at(-1) !== 'data: [DONE]' || last.length !== 1 || types.at(-1) !== last[0])
      throw new Error(`response stream without one final event and [DONE]: ${what()}`)
    const status = streamStatuses.slice(streamsBefore).find((s) => s >= 500)
    if (status) throw new Error(`streamed response failed with ${status}: ${what()}`)
  } else if (res.headers['content-type']?.toString().startsWith('text/event-stream')) {
    const events = res.body
      .split('\n\n')
      .filter((line) => line.trim() !== '')
      .map((line) => (JSON.parse(line) as { event: string }).event)
    const last = events.filter((e) => e === 'end' || e === 'error')
    if (last.length !== 1 || events.at(-1) !== last[0]) throw new Error(`stream without one final event: ${what()}`)
    const status = streamStatuses.slice(streamsBefore).find((s) => s >= 500)
    if (status) throw new Error(`streamed run failed with ${status}: ${what()}`)
  }

  // learn the values the API handed out, to use them in later requests
  if (res.statusCode < 300 && res.statusCode >= 200 && request.method !== 'HEAD') {
    remember('cursor', res.headers['x-next-cursor'])
    let body: unknown
    try {
      body = res.json()
    } catch {}
    const rows = Array.isArray(body) ? body : [body]
    for (const row of rows.slice(0, 5) as Record<string, unknown>[]) {
      if (!row || typeof row !== 'object') continue
      if (op.path.startsWith('/api/v1/flows')) remember('flow', row.id)
      if (res.statusCode === 201 && typeof row.id === 'string') created.push(row.id)
      if (op.path.startsWith('/api/v1/monitor/messages') && 'text' in row) remember('message', row.id)
      remember('session', row.session_id)
      // a response's id is its session
      if (op.path === '/api/v1/responses') remember('session', row.id)
    }
  }
}

// --- the documented routes ---
const doc = (await gateway.inject({ url: '/docs/json' })).json() as {
  paths: Record<string, Record<string, { parameters?: DocParam[]; requestBody?: unknown }>>
}
const operations: Operation[] = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => ({
    method: method.toUpperCase(),
    path,
    params: op.parameters ?? [],
    hasBody: op.requestBody !== undefined,
  })),
)

t.test('every documented public route has an arbitrary, and a body arbitrary when it takes a body', async (t) => {
  t.ok(operations.length >= 16, `${operations.length} documented operations`)
  for (const op of operations) {
    const fuzz = routes[`${op.method} ${op.path}`]
    t.ok(fuzz, `${op.method} ${op.path} has an entry in routes`)
    if (op.hasBody) t.ok(fuzz?.body, `${op.method} ${op.path} has a body arbitrary`)
  }
  for (const key of Object.keys(routes)) {
    t.ok(
      operations.some((op) => `${op.method} ${op.path}` === key),
      `${key} is still documented`,
    )
  }
})

/** A run, so that the message routes find messages of tenant A (the fuzz deletes some). */
async function freshMessages() {
  const session = `fresh-${requests}`
  const headers = { 'x-api-key': KEY_A }
  const run = await gateway.inject({
    method: 'POST',
    url: `/api/v1/run/${runFlows[0]}`,
    headers,
    payload: { input_value: 'fresh', session_id: session },
  })
  if (run.statusCode !== 200) throw new Error(`fresh run: ${run.statusCode} ${run.body}`)
  remember('session', session)
  const messages = await gateway.inject({ url: `/api/v1/monitor/messages?session_id=${session}`, headers })
  for (const message of messages.json() as { id: string }[]) remember('message', message.id)
}

gc()
const heapBefore = process.memoryUsage().heapUsed
const runsByRoute: Record<string, number> = {}

for (const op of operations) {
  const name = `${op.method} ${op.path}`
  const fuzz = routes[name]
  if (!fuzz) continue
  t.test(`fuzz ${name}`, async (t) => {
    await freshMessages()
    const before = requests
    const out = await fc.check(
      fc.asyncProperty(requestOf(op, fuzz), (request) => send(op, request)),
      { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS },
    )
    // fast-check's own report prints the whole counterexample (bodies of megabytes): this one is cut short
    if (out.failed) {
      const error = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance)
      t.fail(`${error}\n  replay: FUZZ_SEED=${out.seed} (path ${out.counterexamplePath}), after ${out.numRuns} runs`)
    }
    runsByRoute[name] = requests - before
    t.ok(requests - before > 0, `${requests - before} requests; answers by status: ${JSON.stringify(statuses[name])}`)
    // the fake model keeps every call: dropped, so the heap check measures the stack alone
    model.calls.length = 0
    seen.length = 0
    await trimFlows()
  })
}

t.test('afterwards: the stack is ready, a normal run works, the heap is bounded', async (t) => {
  t.comment(`seed ${SEED}; ${requests} requests over ${Object.keys(runsByRoute).length} routes`)
  const ready = await gateway.inject({ url: '/ready' })
  t.equal(ready.statusCode, 200, 'ready')

  const { id: _id, ...flow } = fixture('langflow-simple-api-test')
  const created = await gateway.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: { 'x-api-key': KEY_A },
    payload: flow,
  })
  t.equal(created.statusCode, 201, 'a flow is created')
  const flowId = created.json().id as string
  for (const stream of [false, true]) {
    const run = await gateway.inject({
      method: 'POST',
      url: `/api/v1/run/${flowId}?stream=${stream}`,
      headers: { 'x-api-key': KEY_A },
      payload: { input_value: 'after the fuzz', session_id: `after-${stream}` },
    })
    t.equal(run.statusCode, 200, `a run (stream=${stream}) works`)
    const history = await gateway.inject({
      url: `/api/v1/monitor/messages?flow_id=${flowId}&session_id=after-${stream}`,
      headers: { 'x-api-key': KEY_A },
    })
    t.same(
      (history.json() as { text: string }[]).map((m) => m.text),
      ['after the fuzz', 'after the fuzz'],
      'its messages are stored (this flow echoes its input)',
    )
  }

  gc()
  const growth = process.memoryUsage().heapUsed - heapBefore
  t.comment(
    `heap after GC: ${Math.round(heapBefore / MB)} MB before, ${Math.round((heapBefore + growth) / MB)} MB after`,
  )
  t.ok(growth < HEAP_GROWTH_LIMIT, `heap growth ${Math.round(growth / MB)} MB < ${HEAP_GROWTH_LIMIT / MB} MB`)
})
