import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  builtInComponents,
  FlowInvalidError,
  type GraphProblem,
  parseFlow,
  runnableGraph,
  topologicalOrder,
} from '../src/index.js'
import { edge, FIXTURES, fixture, fixturePath, flow, node } from './helpers/flows.js'

t.test('the three fixtures parse with zero problems, and are not changed', async (t) => {
  for (const name of Object.keys(FIXTURES) as (keyof typeof FIXTURES)[]) {
    const before = readFileSync(fixturePath(name), 'utf8')
    const json = JSON.parse(before)
    const { graph, problems } = parseFlow(json, builtInComponents)
    t.strictSame(problems, [], `${name}: no problems`)
    t.strictSame(json, JSON.parse(before), `${name}: the parsed object is not mutated`)
    t.ok(graph.nodes.length >= 3, `${name}: nodes`)
    t.ok(
      graph.nodes.every((n) => n.component !== null),
      `${name}: every node has a component`,
    )
  }
})

t.test('memory chatbot: nodes, display names, values and edges', async (t) => {
  const { graph } = parseFlow(fixture('memory'), builtInComponents)
  t.strictSame(
    graph.nodes.map((n) => n.type),
    ['ChatInput', 'ChatOutput', 'Prompt', 'Memory', 'LanguageModelComponent'],
    'the note is ignored; file order kept',
  )
  const memory = graph.nodes.find((n) => n.type === 'Memory')
  t.equal(memory?.displayName, 'Message History')
  t.equal(memory?.values.template, '{sender_name}: {text}')
  t.equal(memory?.values.session_id, '', 'a show:false field keeps its value')
  t.notOk(memory && 'code' in memory.values, 'the code field is ignored')
  t.strictSame(
    graph.edges.map((e) => `${e.source}.${e.sourceOutput} -> ${e.target}.${e.targetField}`),
    [
      'Memory-MKGtC.messages_text -> Prompt-9wc4j.memory',
      'Prompt-9wc4j.prompt -> LanguageModelComponent-n8KRg.system_message',
      'ChatInput-xLWhw.message -> LanguageModelComponent-n8KRg.input_value',
      'LanguageModelComponent-n8KRg.text_output -> ChatOutput-2ljRT.input_value',
    ],
  )
  t.strictSame(
    topologicalOrder(graph).map((n) => n.type),
    ['ChatInput', 'Memory', 'Prompt', 'LanguageModelComponent', 'ChatOutput'],
  )
})

t.test('every problem is reported, not the first', async (t) => {
  const json = flow(
    [
      node('in', 'ChatInput'),
      node('mystery', 'FancyAgent'),
      node('out', 'ChatOutput'),
      node('a', 'TextOutput'),
      node('b', 'TextOutput'),
    ],
    [
      edge('in', 'message', 'out', 'input_value'),
      edge('in', 'message', 'ghost', 'input_value'),
      edge('in', 'message', 'out', 'no_such_field'),
      edge('a', 'text', 'b', 'input_value'),
      edge('b', 'text', 'a', 'input_value'),
    ],
  )
  const { problems } = parseFlow(json, builtInComponents)
  t.strictSame(
    problems.map((p) => p.kind),
    ['unknown-component', 'missing-node', 'unknown-field', 'cycle'],
  )
  t.match(problems[0], { kind: 'unknown-component', nodeId: 'mystery', componentType: 'FancyAgent' })
  t.match(problems[1], { kind: 'missing-node', nodeId: 'ghost', end: 'target' })
  t.match(problems[2], { kind: 'unknown-field', nodeId: 'out', field: 'no_such_field' })
  t.match(problems[3], { kind: 'cycle', nodeIds: ['a', 'b'] })
  for (const problem of problems) t.type(problem.message, 'string')
  t.match(problems[3]?.message, /a, b/, 'the cycle names its nodes')

  const error = t.throws(() => runnableGraph(parseFlow(json, builtInComponents))) as FlowInvalidError
  t.type(error, FlowInvalidError)
  t.equal(error.statusCode, 422)
  t.equal(error.problems.length, 4)
  t.match(error.message, /FancyAgent/)
})

t.test('more problems: unknown outputs, missing sources, self-loops, several cycles, duplicates', async (t) => {
  const json = flow(
    [
      node('in', 'ChatInput'),
      node('in', 'ChatInput'),
      node('out', 'ChatOutput'),
      node('self', 'TypeConverterComponent'),
      node('x', 'TextOutput'),
      node('y', 'TextOutput'),
      node('z', 'TextOutput'),
      node('out2', 'ChatOutput'),
      node('model', 'LanguageModelComponent', { model: [] }),
    ],
    [
      edge('in', 'not_an_output', 'out', 'input_value'),
      edge('nowhere', 'message', 'out', 'sender_name'),
      edge('self', 'message_output', 'self', 'input_data'),
      edge('x', 'text', 'y', 'input_value'),
      edge('y', 'text', 'z', 'input_value'),
      edge('z', 'text', 'x', 'input_value'),
      edge('in', 'message', 'out2', 'input_value'),
      edge('model', 'text_output', 'out2', 'input_value'),
      edge('model', 'model_output', 'out', 'session_id'),
    ],
  )
  const { problems } = parseFlow(json, builtInComponents)
  const summary = problems.map((p: GraphProblem) => {
    switch (p.kind) {
      case 'duplicate-node':
        return `duplicate ${p.nodeId}`
      case 'unknown-output':
        return `output ${p.nodeId}.${p.output}`
      case 'missing-node':
        return `missing ${p.end} ${p.nodeId}`
      case 'duplicate-input':
        return `duplicate input ${p.nodeId}.${p.field}`
      case 'cycle':
        return `cycle ${p.nodeIds.join(',')}`
      default:
        return p.kind
    }
  })
  t.strictSame(summary, [
    'duplicate in',
    'missing source nowhere',
    'output in.not_an_output',
    'output model.model_output',
    'duplicate input out2.input_value',
    'cycle self',
    'cycle x,y,z',
  ])
})

t.test('malformed flows are problems, not exceptions', async (t) => {
  t.match(parseFlow(null, builtInComponents).problems, [{ kind: 'malformed', at: 'data.nodes' }])
  t.match(parseFlow({ data: { nodes: {} } }, builtInComponents).problems, [{ kind: 'malformed', at: 'data.nodes' }])
  t.match(parseFlow({ data: { nodes: [], edges: 'x' } }, builtInComponents).problems, [
    { kind: 'malformed', at: 'data.edges' },
  ])
  t.match(parseFlow({ data: { nodes: [{ data: { type: 'ChatInput' } }] } }, builtInComponents).problems, [
    { kind: 'malformed', at: 'data.nodes[0]' },
  ])
  t.match(parseFlow({ data: { nodes: [], edges: [{ id: 'e', data: {} }] } }, builtInComponents).problems, [
    { kind: 'malformed', at: 'data.edges[0]' },
  ])
  t.strictSame(parseFlow({ data: { nodes: [] } }, builtInComponents).problems, [], 'a flow without edges is fine')
})

t.test('notes and untyped nodes are ignored; Langflow string handles are read', async (t) => {
  const json = flow([
    { id: 'n1', type: 'noteNode', data: { type: 'note', id: 'n1', node: { display_name: '', template: {} } } },
    { id: 'n2', type: 'noteNode', data: { id: 'n2', node: { display_name: '', template: {} } } },
    node('in', 'ChatInput'),
    node('out', 'ChatOutput'),
  ])
  json.data.edges.push({
    id: 'string-handles',
    sourceHandle: '{œdataTypeœ:œChatInputœ,œidœ:œinœ,œnameœ:œmessageœ,œoutput_typesœ:[œMessageœ]}',
    targetHandle: '{œfieldNameœ:œinput_valueœ,œidœ:œoutœ,œinputTypesœ:[œMessageœ],œtypeœ:œstrœ}',
  })
  const { graph, problems } = parseFlow(json, builtInComponents)
  t.strictSame(problems, [])
  t.strictSame(
    graph.nodes.map((n) => n.id),
    ['in', 'out'],
  )
  t.match(graph.edges, [{ source: 'in', sourceOutput: 'message', target: 'out', targetField: 'input_value' }])
})

t.test(
  'template values: load_from_db fields are unset, internal fields skipped, invalid stored sessions reported',
  async (t) => {
    const json = flow([node('model', 'OpenAIModel'), node('in', 'ChatInput', { session_id: 'x'.repeat(256) })])
    const template = (json.data.nodes[0] as { data: { node: { template: Record<string, unknown> } } }).data.node
      .template
    template.api_key = { value: 'OPENAI_API_KEY', load_from_db: true }
    template.model_name = { value: 'gpt-4o-mini', load_from_db: false }
    template._type = 'Component'
    template.code = { value: 'class X: pass' }
    const { graph, problems } = parseFlow(json, builtInComponents)
    t.strictSame(graph.nodes[0]?.values, { model_name: 'gpt-4o-mini' })
    t.match(problems, [{ kind: 'invalid-session-id', nodeId: 'in' }])
  },
)

t.test('Prompt variables are fields edges may target', async (t) => {
  const ok = parseFlow(
    flow(
      [node('in', 'ChatInput'), node('p', 'Prompt', { template: 'Hi {name}, {{literal}}' })],
      [edge('in', 'message', 'p', 'name')],
    ),
    builtInComponents,
  )
  t.strictSame(ok.problems, [])
  const literal = parseFlow(
    flow(
      [node('in', 'ChatInput'), node('p', 'Prompt', { template: 'Hi {name}, {{literal}}' })],
      [edge('in', 'message', 'p', 'literal')],
    ),
    builtInComponents,
  )
  t.match(literal.problems, [{ kind: 'unknown-field', field: 'literal' }], '{{x}} is not a variable in f-string mode')
  const double = parseFlow(
    flow(
      [node('in', 'ChatInput'), node('p', 'Prompt', { template: 'Hi {{name}}', use_double_brackets: true })],
      [edge('in', 'message', 'p', 'name')],
    ),
    builtInComponents,
  )
  t.strictSame(double.problems, [])
})
