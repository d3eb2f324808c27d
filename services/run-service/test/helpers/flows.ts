import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  buildRunResponse,
  builtInComponents,
  type ComponentRegistry,
  type ExecuteOptions,
  executeRun,
  parseFlow,
  planRun,
  type RunEvent,
  type RunOutcome,
  type RunRequest,
  type RunResponse,
  runnableGraph,
} from '../../src/index.js'
import { FakeMessageStore, FakeModel } from './fakes.js'

export const FLOW_ID = '0b7f3c52-7c1e-4c39-9d47-5f0b7e0c1a11'
export const MODEL_DEFAULTS = { baseUrl: 'http://models.test/v1', apiKey: 'sk-config', defaultModel: 'default-model' }

export const FIXTURES = {
  simple: 'langflow-simple-api-test',
  basic: 'langflow-basic-prompting',
  memory: 'langflow-memory-chatbot',
} as const

/** A fresh copy of a fixture (the files themselves are never changed). */
export function fixture(name: keyof typeof FIXTURES): FlowJson {
  return JSON.parse(readFileSync(fixturePath(name), 'utf8'))
}

/** `FIXTURES_DIR`, else the workspace's sibling `shared/fixtures`. */
export function fixturePath(name: keyof typeof FIXTURES): string {
  const dir = process.env.FIXTURES_DIR ?? fileURLToPath(new URL('../../../../../shared/fixtures', import.meta.url))
  return `${dir}/${FIXTURES[name]}.json`
}

export interface FlowJson {
  id?: string
  data: { nodes: NodeJson[]; edges: unknown[] }
}

export interface NodeJson {
  id: string
  type: string
  data: { type?: string; id: string; node: { display_name: string; template: Record<string, { value: unknown }> } }
}

/** A node in Langflow's export shape. */
export function node(id: string, type: string, values: Record<string, unknown> = {}, displayName = id): NodeJson {
  const template = Object.fromEntries(Object.entries(values).map(([field, value]) => [field, { value, show: true }]))
  return { id, type: 'genericNode', data: { type, id, node: { display_name: displayName, template } } }
}

/** An edge in Langflow's export shape: `source`'s output → `target`'s field. */
export function edge(source: string, output: string, target: string, field: string) {
  return {
    id: `${source}.${output}->${target}.${field}`,
    source,
    target,
    data: { sourceHandle: { id: source, name: output }, targetHandle: { id: target, fieldName: field } },
  }
}

export function flow(nodes: NodeJson[], edges: unknown[] = []): FlowJson {
  return { id: FLOW_ID, data: { nodes, edges } }
}

/** Sets a stored field value of a node of a flow JSON. */
export function setValue(json: FlowJson, nodeId: string, field: string, value: unknown): void {
  const target = json.data.nodes.find((candidate) => candidate.id === nodeId)
  if (!target) throw new Error(`no node ${nodeId}`)
  target.data.node.template[field] = { ...target.data.node.template[field], value }
}

export function nodeIdOfType(json: FlowJson, type: string): string {
  const found = json.data.nodes.find((candidate) => candidate.data.type === type)
  if (!found) throw new Error(`no ${type} node`)
  return found.id
}

export interface Harness {
  store: FakeMessageStore
  model: FakeModel
}

export function harness(): Harness {
  return { store: new FakeMessageStore(), model: new FakeModel() }
}

export interface RunResult {
  response: RunResponse
  outcome: RunOutcome
  events: RunEvent[]
}

export interface RunOptions extends Partial<Omit<ExecuteOptions, 'messages' | 'model'>> {
  registry?: ComponentRegistry
  flowId?: string
}

/** Parse → plan → execute → build the response, with the harness's fake ports. */
export async function run(
  h: Harness,
  json: FlowJson,
  request: RunRequest = {},
  options: RunOptions = {},
): Promise<RunResult> {
  const graph = runnableGraph(parseFlow(json, options.registry ?? builtInComponents))
  const plan = planRun(graph, options.flowId ?? FLOW_ID, request)
  const events: RunEvent[] = []
  const outcome = await executeRun(plan, {
    messages: h.store,
    model: h.model,
    modelDefaults: MODEL_DEFAULTS,
    ...options,
    onEvent: (event) => {
      events.push(event)
      options.onEvent?.(event)
    },
  })
  return { response: buildRunResponse(plan, outcome), outcome, events }
}
