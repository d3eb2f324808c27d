import { isValidSessionId } from '@session-runtime/schemas'
import { FlowInvalidError } from './errors.js'
import {
  acceptsField,
  type ComponentRegistry,
  type FlowEdge,
  type FlowGraph,
  type FlowNode,
  type GraphProblem,
  type ParsedFlow,
} from './graph-model.js'

const NOTE_TYPES = new Set(['note', 'noteNode'])

/**
 * Parses a Langflow flow (`{ data: { nodes, edges } }`) and validates the whole graph; `registry` holds the
 * component types a node may have (the engine's built-in ones: `builtInComponents`).
 */
export function parseFlow(flow: unknown, registry: ComponentRegistry): ParsedFlow {
  const problems: GraphProblem[] = []
  const data = record(record(flow)?.data)
  if (!data || !Array.isArray(data.nodes)) {
    problems.push({ kind: 'malformed', at: 'data.nodes', message: 'data.nodes must be an array' })
  }
  if (data?.edges !== undefined && !Array.isArray(data.edges)) {
    problems.push({ kind: 'malformed', at: 'data.edges', message: 'data.edges must be an array' })
  }
  const rawNodes: unknown[] = Array.isArray(data?.nodes) ? data.nodes : []
  const rawEdges: unknown[] = Array.isArray(data?.edges) ? data.edges : []

  const nodes: FlowNode[] = []
  const byId = new Map<string, FlowNode>()
  rawNodes.forEach((raw, index) => {
    const node = parseNode(raw, index, registry, problems)
    if (!node) return
    if (byId.has(node.id)) {
      problems.push({ kind: 'duplicate-node', nodeId: node.id, message: `node ${node.id} appears more than once` })
      return
    }
    nodes.push(node)
    byId.set(node.id, node)
  })

  const edges: FlowEdge[] = []
  rawEdges.forEach((raw, index) => {
    const edge = parseEdge(raw, index, problems)
    if (edge && edgeEndsExist(edge, byId, problems)) edges.push(edge)
  })
  for (const edge of edges) checkEdgeHandles(edge, byId, problems)
  checkDuplicateInputs(edges, problems)
  for (const node of nodes) checkStoredSession(node, problems)

  const graph = buildGraph(nodes, edges, byId)
  for (const nodeIds of cycles(graph)) {
    problems.push({ kind: 'cycle', nodeIds, message: `nodes ${nodeIds.join(', ')} form a cycle` })
  }
  return { graph, problems }
}

/** The graph of a flow without problems; else FlowInvalidError listing every problem. */
export function runnableGraph(parsed: ParsedFlow): FlowGraph {
  if (parsed.problems.length > 0) throw new FlowInvalidError(parsed.problems)
  return parsed.graph
}

/**
 * Nodes in an order where every node comes after its upstream nodes; among the nodes that are
 * ready, the flow file's order. Nodes on a cycle are left out (a validated graph has none).
 */
export function topologicalOrder(graph: FlowGraph): FlowNode[] {
  const waiting = new Map(graph.nodes.map((node) => [node.id, graph.incoming.get(node.id)?.length ?? 0]))
  const order: FlowNode[] = []
  for (let next = firstReady(); next; next = firstReady()) {
    order.push(next)
    waiting.delete(next.id)
    for (const edge of graph.outgoing.get(next.id) ?? []) {
      const count = waiting.get(edge.target)
      if (count !== undefined) waiting.set(edge.target, count - 1)
    }
  }
  return order

  function firstReady(): FlowNode | undefined {
    return graph.nodes.find((node) => waiting.get(node.id) === 0)
  }
}

function parseNode(
  raw: unknown,
  index: number,
  registry: ComponentRegistry,
  problems: GraphProblem[],
): FlowNode | undefined {
  const data = record(record(raw)?.data)
  const type = data?.type
  if (typeof type !== 'string' || type === '' || NOTE_TYPES.has(type)) return undefined
  const id = record(raw)?.id ?? data?.id
  if (typeof id !== 'string' || id === '') {
    problems.push({ kind: 'malformed', at: `data.nodes[${index}]`, message: `node ${index} (${type}) has no id` })
    return undefined
  }
  const definition = record(data?.node)
  const displayName = typeof definition?.display_name === 'string' ? definition.display_name : type
  const component = registry.get(type) ?? null
  if (!component) {
    problems.push({
      kind: 'unknown-component',
      nodeId: id,
      componentType: type,
      message: `node ${id} has the unsupported component type ${type}`,
    })
  }
  return { id, type, displayName, values: templateValues(record(definition?.template)), component }
}

/**
 * `template.<field>.value` of every field except `code` and internal `_` fields. A field loaded
 * from a Langflow global variable (`load_from_db`) holds the variable's name, not a value: it is unset.
 */
function templateValues(template: Record<string, unknown> | undefined): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  for (const [field, raw] of Object.entries(template ?? {})) {
    const entry = record(raw)
    if (field === 'code' || field.startsWith('_') || !entry || !('value' in entry)) continue
    if (entry.load_from_db === true) continue
    values[field] = entry.value
  }
  return values
}

function parseEdge(raw: unknown, index: number, problems: GraphProblem[]): FlowEdge | undefined {
  const edge = record(raw)
  const source = handle(record(edge?.data)?.sourceHandle ?? edge?.sourceHandle)
  const target = handle(record(edge?.data)?.targetHandle ?? edge?.targetHandle)
  const id = typeof edge?.id === 'string' ? edge.id : `edge ${index}`
  const sourceId = source?.id
  const sourceOutput = source?.name
  const targetId = target?.id
  const targetField = target?.fieldName
  if (
    typeof sourceId !== 'string' ||
    typeof sourceOutput !== 'string' ||
    typeof targetId !== 'string' ||
    typeof targetField !== 'string'
  ) {
    problems.push({
      kind: 'malformed',
      at: `data.edges[${index}]`,
      message: `edge ${id} lacks sourceHandle.{id, name} or targetHandle.{id, fieldName}`,
    })
    return undefined
  }
  return { id, source: sourceId, sourceOutput, target: targetId, targetField }
}

/** A handle object, or Langflow's string form of it (JSON with `œ` for quotes). */
function handle(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== 'string') return record(value)
  try {
    return record(JSON.parse(value.replaceAll('œ', '"')))
  } catch {
    return undefined
  }
}

function edgeEndsExist(edge: FlowEdge, byId: ReadonlyMap<string, FlowNode>, problems: GraphProblem[]): boolean {
  let exist = true
  for (const [end, nodeId] of [
    ['source', edge.source],
    ['target', edge.target],
  ] as const) {
    if (byId.has(nodeId)) continue
    exist = false
    problems.push({
      kind: 'missing-node',
      edgeId: edge.id,
      nodeId,
      end,
      message: `edge ${edge.id} ${end === 'source' ? 'comes from' : 'goes to'} the missing node ${nodeId}`,
    })
  }
  return exist
}

function checkEdgeHandles(edge: FlowEdge, byId: ReadonlyMap<string, FlowNode>, problems: GraphProblem[]): void {
  const source = byId.get(edge.source)
  const target = byId.get(edge.target)
  if (source?.component && !source.component.outputs.includes(edge.sourceOutput)) {
    problems.push({
      kind: 'unknown-output',
      edgeId: edge.id,
      nodeId: source.id,
      output: edge.sourceOutput,
      message: `edge ${edge.id} comes from the output ${edge.sourceOutput}, which ${source.id} (${source.type}) does not have`,
    })
  }
  if (target?.component && !acceptsField(target.component, target, edge.targetField)) {
    problems.push({
      kind: 'unknown-field',
      edgeId: edge.id,
      nodeId: target.id,
      field: edge.targetField,
      message: `edge ${edge.id} goes to the field ${edge.targetField}, which ${target.id} (${target.type}) does not have`,
    })
  }
}

function checkDuplicateInputs(edges: readonly FlowEdge[], problems: GraphProblem[]): void {
  const byInput = groupBy(edges, (edge) => `${edge.target}\u0000${edge.targetField}`)
  for (const group of byInput.values()) {
    if (group.length < 2) continue
    const { target, targetField } = group[0] as FlowEdge
    problems.push({
      kind: 'duplicate-input',
      nodeId: target,
      field: targetField,
      edgeIds: group.map((edge) => edge.id),
      message: `the field ${targetField} of ${target} receives ${group.length} edges; one is supported`,
    })
  }
}

function checkStoredSession(node: FlowNode, problems: GraphProblem[]): void {
  const stored = node.values.session_id
  if (stored === undefined || stored === null || stored === '' || !node.component?.inputs.includes('session_id')) return
  if (typeof stored === 'string' && isValidSessionId(stored)) return
  problems.push({
    kind: 'invalid-session-id',
    nodeId: node.id,
    message: `node ${node.id} has an invalid session_id (1–255 characters, no NUL)`,
  })
}

function buildGraph(nodes: FlowNode[], edges: FlowEdge[], byId: ReadonlyMap<string, FlowNode>): FlowGraph {
  return {
    nodes,
    edges,
    byId,
    incoming: groupBy(edges, (edge) => edge.target),
    outgoing: groupBy(edges, (edge) => edge.source),
  }
}

/** The strongly connected components that are cycles (Tarjan), each in file order. */
function cycles(graph: FlowGraph): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const position = new Map(graph.nodes.map((node, i) => [node.id, i]))

  const visit = (id: string): void => {
    index.set(id, index.size)
    low.set(id, index.get(id) as number)
    stack.push(id)
    onStack.add(id)
    for (const { target } of graph.outgoing.get(id) ?? []) {
      if (!index.has(target)) {
        visit(target)
        low.set(id, Math.min(low.get(id) as number, low.get(target) as number))
      } else if (onStack.has(target)) {
        low.set(id, Math.min(low.get(id) as number, index.get(target) as number))
      }
    }
    if (low.get(id) !== index.get(id)) return
    const component: string[] = []
    let member: string | undefined
    do {
      member = stack.pop() as string
      onStack.delete(member)
      component.push(member)
    } while (member !== id)
    const selfLoop = graph.outgoing.get(id)?.some((edge) => edge.target === id) ?? false
    if (component.length > 1 || selfLoop) {
      found.push(component.sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0)))
    }
  }
  for (const node of graph.nodes) if (!index.has(node.id)) visit(node.id)
  return found
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const group = groups.get(key(item))
    if (group) group.push(item)
    else groups.set(key(item), [item])
  }
  return groups
}
