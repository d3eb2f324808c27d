import t from 'tap'
import {
  builtInComponents,
  carriedSessionId,
  type FlowValue,
  parseFlow,
  planRun,
  type RunRequest,
  resolveSessionId,
  runnableGraph,
  runSessionId,
  type SessionCandidates,
} from '../src/index.js'
import {
  edge,
  FLOW_ID,
  type FlowJson,
  fixture,
  flow,
  type Harness,
  harness,
  node,
  nodeIdOfType,
  type RunResult,
  run,
  setValue,
} from './helpers/flows.js'

t.test('resolveSessionId: the order of spec §2, empty values counting as absent', async (t) => {
  const table: [string, Omit<SessionCandidates, 'flowId'>, string, string][] = [
    ['nothing: the flow ID', {}, FLOW_ID, 'flow'],
    ['request beats everything', { request: 'r', edge: 'e', tweak: 't', stored: 's', inherited: 'i' }, 'r', 'request'],
    ['edge beats tweak', { edge: 'e', tweak: 't', stored: 's', inherited: 'i' }, 'e', 'edge'],
    ['tweak beats stored', { tweak: 't', stored: 's', inherited: 'i' }, 't', 'tweak'],
    ['stored beats inherited', { stored: 's', inherited: 'i' }, 's', 'stored'],
    ['inherited beats the flow ID', { inherited: 'i' }, 'i', 'inherited'],
    ['empty request is absent', { request: '', stored: 's' }, 's', 'stored'],
    ['null request is absent', { request: null, tweak: 't' }, 't', 'tweak'],
    ['empty edge value falls through', { edge: '', tweak: 't' }, 't', 'tweak'],
    ['empty tweak does not clear the stored value', { tweak: '', stored: 's' }, 's', 'stored'],
    ['empty stored value falls through', { stored: '', inherited: 'i' }, 'i', 'inherited'],
    ['all empty: the flow ID', { request: '', edge: '', tweak: '', stored: '', inherited: '' }, FLOW_ID, 'flow'],
    ['compared as is: spaces are a session', { request: ' ' }, ' ', 'request'],
  ]
  for (const [name, candidates, sessionId, source] of table) {
    t.strictSame(resolveSessionId({ ...candidates, flowId: FLOW_ID }), { sessionId, source }, name)
  }
})

t.test('runSessionId: request, else the first ChatInput, else the flow ID', async (t) => {
  t.equal(runSessionId('req', 'chat', FLOW_ID), 'req')
  t.equal(runSessionId('', 'chat', FLOW_ID), 'chat', 'empty request is absent')
  t.equal(runSessionId(null, 'chat', FLOW_ID), 'chat')
  t.equal(runSessionId(undefined, undefined, FLOW_ID), FLOW_ID)
})

t.test('carriedSessionId: a Message carries its session; text and data carry none', async (t) => {
  const message = (session_id: string): FlowValue => ({ kind: 'message', message: { session_id } as never })
  t.equal(carriedSessionId(message('s1')), 's1')
  t.equal(carriedSessionId(message('')), undefined, 'a plain-text Message (Prompt, TextInput) carries none')
  t.equal(carriedSessionId({ kind: 'raw', value: 's1' }), undefined)
  t.equal(carriedSessionId({ kind: 'data', data: { session_id: 's1' } }), undefined)
  t.equal(carriedSessionId(undefined), undefined)
})

// ---------------------------------------------------------------------------------------------
// The same rule, observed through real runs, for every message-emitting component type.

/** What a row sets for the component under test ('Target'). */
interface Setup {
  request?: string
  tweak?: string
  stored?: string
  /** A TextInput's text wired into Target.session_id. */
  edge?: string
  /** A ChatInput with this stored session wired into Target's main input. */
  upstream?: string
  /** A TextInput (plain text, no session) wired into Target's main input. */
  upstreamText?: string
}

interface Kind {
  name: string
  type: string
  values: Record<string, unknown>
  /** Has a `session_id` field of its own. */
  ownSetting: boolean
  mainInput?: string
  /** Extra nodes/edges (the model's ChatOutput). */
  extend?: (nodes: FlowJson['data']['nodes'], edges: unknown[]) => void
  /** Every session the Target was seen using: its emitted messages as stored, its history reads. */
  observe: (h: Harness, result: RunResult) => string[]
}

const emittedSessions = (h: Harness, result: RunResult, nodeId = 'Target') => {
  const component = result.outcome.results.find((r) => r.nodeId === nodeId)
  if (!component || component.messages.length === 0) return ['<no message emitted>']
  return component.messages.map(
    (m) => h.store.messages.find((stored) => stored.id === m.id)?.session_id ?? '<not stored>',
  )
}

const kinds: Kind[] = [
  {
    name: 'ChatInput',
    type: 'ChatInput',
    values: { input_value: 'hello' },
    ownSetting: true,
    observe: emittedSessions,
  },
  {
    name: 'ChatOutput',
    type: 'ChatOutput',
    values: { input_value: 'a reply' },
    ownSetting: true,
    mainInput: 'input_value',
    observe: emittedSessions,
  },
  {
    name: 'Memory (Retrieve)',
    type: 'Memory',
    values: { mode: 'Retrieve' },
    ownSetting: true,
    observe: (h) => (h.store.historyCalls.length ? h.store.historyCalls.map((call) => call.sessionId) : ['<no read>']),
  },
  {
    name: 'Memory (Store)',
    type: 'Memory',
    values: { mode: 'Store', message: 'remember this' },
    ownSetting: true,
    mainInput: 'message',
    observe: emittedSessions,
  },
  {
    name: 'StoreMessage',
    type: 'StoreMessage',
    values: { message: 'remember this' },
    ownSetting: true,
    mainInput: 'message',
    observe: emittedSessions,
  },
  {
    name: 'model streaming into a ChatOutput',
    type: 'LanguageModelComponent',
    values: { input_value: 'question', model: [], stream: true },
    ownSetting: false,
    mainInput: 'input_value',
    extend: (nodes, edges) => {
      nodes.push(node('Out', 'ChatOutput', { session_id: '' }))
      edges.push(edge('Target', 'text_output', 'Out', 'input_value'))
    },
    observe: (h, result) => {
      const model = result.outcome.results.find((r) => r.nodeId === 'Target')
      const out = result.outcome.results.find((r) => r.nodeId === 'Out')?.messages[0]
      const tokens = result.events.filter((event) => event.event === 'token')
      const streamedIntoReply = tokens.length > 0 && tokens.every((event) => event.data.id === out?.id)
      if (!streamedIntoReply) return ['<tokens not streamed into the reply>']
      // The ChatOutput has no setting of its own: it stores the reply in the model's session.
      return [model?.sessionId ?? '<model did not run>', ...emittedSessions(h, result, 'Out')]
    },
  },
]

type Key = keyof Setup | 'flow'

interface Row {
  name: string
  setup: Setup
  expect: (kind: Kind) => Key
  applies?: (kind: Kind) => boolean
}

const own = (kind: Kind) => kind.ownSetting
const inherits = (kind: Kind) => kind.mainInput !== undefined
const full = { edge: 'edge-s', tweak: 'tweak-s', stored: 'stored-s', upstream: 'upstream-s' }

const rows: Row[] = [
  { name: 'nothing set: the flow ID', setup: {}, expect: () => 'flow' },
  { name: 'request (payload) beats everything', setup: { request: 'request-s', ...full }, expect: () => 'request' },
  { name: 'stored setting', setup: { stored: 'stored-s' }, expect: () => 'stored', applies: own },
  { name: 'tweak beats stored', setup: { tweak: 'tweak-s', stored: 'stored-s' }, expect: () => 'tweak', applies: own },
  {
    name: 'edge-wired value beats tweak',
    setup: { edge: 'edge-s', tweak: 'tweak-s', stored: 'stored-s' },
    expect: () => 'edge',
    applies: own,
  },
  {
    name: 'inherited from the upstream message',
    setup: { upstream: 'upstream-s' },
    expect: () => 'upstream',
    applies: inherits,
  },
  {
    name: 'own stored setting beats inherited (a model has no session field: inherited)',
    setup: { stored: 'stored-s', upstream: 'upstream-s' },
    expect: (kind) => (kind.ownSetting ? 'stored' : 'upstream'),
    applies: inherits,
  },
  {
    name: 'tweak beats inherited (a model has no session field: the tweak is ignored)',
    setup: { tweak: 'tweak-s', upstream: 'upstream-s' },
    expect: (kind) => (kind.ownSetting ? 'tweak' : 'upstream'),
    applies: inherits,
  },
  { name: 'plain text upstream carries no session', setup: { upstreamText: 'text' }, expect: () => 'flow' },
  { name: 'empty request is absent', setup: { request: '', stored: 'stored-s' }, expect: () => 'stored', applies: own },
  { name: 'empty request, nothing else: the flow ID', setup: { request: '' }, expect: () => 'flow' },
  {
    name: 'empty request, inherited',
    setup: { request: '', upstream: 'upstream-s' },
    expect: () => 'upstream',
    applies: inherits,
  },
  {
    name: 'empty tweak does not clear the stored value',
    setup: { tweak: '', stored: 'stored-s' },
    expect: () => 'stored',
    applies: own,
  },
  {
    name: 'empty edge value falls to the tweak',
    setup: { edge: '', tweak: 'tweak-s' },
    expect: () => 'tweak',
    applies: own,
  },
  { name: 'empty stored value: the flow ID', setup: { stored: '' }, expect: () => 'flow', applies: own },
]

function build(kind: Kind, setup: Setup): FlowJson {
  const values = { ...kind.values, ...(setup.stored === undefined ? {} : { session_id: setup.stored }) }
  const nodes = [node('Target', kind.type, values)]
  const edges: unknown[] = []
  if (setup.edge !== undefined && kind.ownSetting) {
    nodes.push(node('SessionText', 'TextInput', { input_value: setup.edge }))
    edges.push(edge('SessionText', 'text', 'Target', 'session_id'))
  }
  if (setup.upstream !== undefined && kind.mainInput) {
    nodes.push(node('Upstream', 'ChatInput', { input_value: 'upstream says hi', session_id: setup.upstream }))
    edges.push(edge('Upstream', 'message', 'Target', kind.mainInput))
  }
  if (setup.upstreamText !== undefined && kind.mainInput) {
    nodes.push(node('UpstreamText', 'TextInput', { input_value: setup.upstreamText }))
    edges.push(edge('UpstreamText', 'text', 'Target', kind.mainInput))
  }
  kind.extend?.(nodes, edges)
  return flow(nodes, edges)
}

for (const kind of kinds) {
  t.test(`session table: ${kind.name}`, async (t) => {
    for (const row of rows) {
      if (row.applies && !row.applies(kind)) continue
      if (row.setup.upstreamText !== undefined && !kind.mainInput) continue
      const h = harness()
      const request = {
        ...(row.setup.request === undefined ? {} : { session_id: row.setup.request }),
        ...(row.setup.tweak === undefined ? {} : { tweaks: { Target: { session_id: row.setup.tweak } } }),
      }
      const result = await run(h, build(kind, row.setup), request)
      const key = row.expect(kind)
      const expected = key === 'flow' ? FLOW_ID : row.setup[key]
      const observed = kind.observe(h, result)
      t.strictSame(
        observed,
        observed.map(() => expected),
        `${row.name} → ${expected}`,
      )
    }
  })
}

t.test('ChatInput and ChatOutput with different stored sessions each store in their own', async (t) => {
  const h = harness()
  const json = fixture('simple')
  const chatIn = nodeIdOfType(json, 'ChatInput')
  const chatOut = nodeIdOfType(json, 'ChatOutput')
  setValue(json, chatIn, 'session_id', 'in-session')
  setValue(json, chatOut, 'session_id', 'out-session')
  const { response } = await run(h, json, { input_value: 'hi' })
  t.strictSame(
    h.store.session('in-session').map((m) => [m.sender, m.text]),
    [['User', 'hi']],
  )
  t.strictSame(
    h.store.session('out-session').map((m) => [m.sender, m.text]),
    [['Machine', 'hi']],
  )
  t.equal(response.session_id, 'in-session', "the response carries the ChatInput's session")

  const again = harness()
  setValue(json, chatOut, 'session_id', '')
  await run(again, json, { input_value: 'hi' })
  t.strictSame(
    again.store.session('in-session').map((m) => m.sender),
    ['User', 'Machine'],
    'a ChatOutput without a setting follows the ChatInput',
  )

  const overridden = harness()
  setValue(json, chatOut, 'session_id', 'out-session')
  const { response: withRequest } = await run(overridden, json, { input_value: 'hi', session_id: 'req' })
  t.strictSame(
    overridden.store.session('req').map((m) => m.sender),
    ['User', 'Machine'],
  )
  t.equal(withRequest.session_id, 'req')
})

t.test('top-level session_id: the first ChatInput in file order', async (t) => {
  const nodes = [
    node('second-in-order', 'ChatInput', { input_value: 'a', session_id: 'one' }),
    node('first-in-order', 'ChatInput', { input_value: 'b', session_id: 'two' }),
  ]
  const first = await run(harness(), flow(nodes))
  t.equal(first.response.session_id, 'one')
  const second = await run(harness(), flow([...nodes].reverse()))
  t.equal(second.response.session_id, 'two')
  const noChat = await run(harness(), flow([node('text', 'TextInput', { input_value: 'x' })]))
  t.equal(noChat.response.session_id, FLOW_ID, 'no ChatInput: the flow ID')
  const requested = await run(harness(), flow(nodes), { session_id: 'asked' })
  t.equal(requested.response.session_id, 'asked')
  const emptyRequest = await run(harness(), flow(nodes), { session_id: '' })
  t.equal(emptyRequest.response.session_id, 'one', 'empty request session is absent')
})

t.test('planRun: the session a run takes its turn on is the session it reports (known before the run)', async (t) => {
  const json = fixture('memory')
  const chatInput = nodeIdOfType(json, 'ChatInput')
  const planned = (request: RunRequest, j: FlowJson = json) =>
    planRun(runnableGraph(parseFlow(j, builtInComponents)), FLOW_ID, request).sessionId
  const cases: [string, RunRequest, FlowJson][] = [
    ['the request’s', { input_value: 'a', session_id: 'req' }, json],
    ['none: the flow ID', { input_value: 'a' }, json],
    ['an empty session_id: the flow ID', { input_value: 'a', session_id: '' }, json],
    ['the ChatInput’s tweak', { input_value: 'a', tweaks: { [chatInput]: { session_id: 'tweaked' } } }, json],
  ]
  const stored = structuredClone(json)
  setValue(stored, chatInput, 'session_id', 'stored-s')
  cases.push(['the ChatInput’s stored value', { input_value: 'a' }, stored])
  cases.push(['the request beats the stored value', { input_value: 'a', session_id: 'req' }, stored])
  for (const [what, request, flowJson] of cases) {
    const { outcome } = await run(harness(), flowJson, request)
    t.equal(planned(request, flowJson), outcome.sessionId, `${what}: ${outcome.sessionId}`)
  }
  t.equal(planned({ multitask_strategy: null }), FLOW_ID)
  const wired = flow(
    [node('SessionText', 'TextInput', { input_value: 'wired-s' }), node('In', 'ChatInput', { input_value: 'x' })],
    [edge('SessionText', 'text', 'In', 'session_id')],
  )
  t.equal((await run(harness(), wired, {})).outcome.sessionId, 'wired-s', 'a session wired into the ChatInput…')
  t.equal(planned({}, wired), FLOW_ID, '…is known only while running: the flow ID stands in')
  t.equal(planned({ session_id: 'req' }, wired), 'req', 'unless the request names one')
  t.equal(
    planRun(runnableGraph(parseFlow(json, builtInComponents)), FLOW_ID, {}).multitaskStrategy,
    'enqueue',
    'enqueue by default',
  )
  t.equal(
    planRun(runnableGraph(parseFlow(json, builtInComponents)), FLOW_ID, { multitask_strategy: 'reject' })
      .multitaskStrategy,
    'reject',
  )
})
