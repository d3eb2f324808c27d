import { isValidSessionId } from '@session-runtime/schemas'
import { InvalidTweakError, TweakConflictError } from './errors.js'
import { acceptsField, type FlowGraph, type FlowNode } from './graph-model.js'

/** Per node id: the field values this run sets over the stored ones. */
export type NodeOverrides = ReadonlyMap<string, Readonly<Record<string, unknown>>>

/**
 * Applies `tweaks` (spec §3): `{ "<node id or display name>": { field: value } }`, and top-level
 * `field: value` pairs (any value that is not an object) for every node having that field. For one
 * node, a node-id tweak beats a display-name tweak, which beats a top-level pair. Unknown node keys
 * and fields a node does not have are ignored. A `session_id` tweak must be '' or a session ID.
 */
export function applyTweaks(graph: FlowGraph, tweaks: Readonly<Record<string, unknown>>): NodeOverrides {
  const everyNode: Record<string, unknown> = {}
  const byKey = new Map<string, Record<string, unknown>>()
  for (const [key, value] of Object.entries(tweaks)) {
    if (isPlainObject(value)) byKey.set(key, value)
    else everyNode[key] = value
  }
  const overrides = new Map<string, Record<string, unknown>>()
  for (const node of graph.nodes) {
    const fields = {
      ...accepted(node, everyNode),
      ...accepted(node, byKey.get(node.displayName)),
      ...accepted(node, byKey.get(node.id)),
    }
    checkSessionTweak(node, fields.session_id)
    if (Object.keys(fields).length > 0) overrides.set(node.id, fields)
  }
  return overrides
}

/**
 * Gives the request's `input_value` (unless null) to the receiving input components. A tweak that
 * also sets `input_value` on one of them is a conflict (400).
 */
export function applyRequestInput(
  overrides: NodeOverrides,
  receivers: readonly FlowNode[],
  inputValue: string | null,
): NodeOverrides {
  if (inputValue === null) return overrides
  const result = new Map(overrides)
  for (const node of receivers) {
    const fields = overrides.get(node.id) ?? {}
    if ('input_value' in fields) throw new TweakConflictError(node.id)
    result.set(node.id, { ...fields, input_value: inputValue })
  }
  return result
}

function accepted(node: FlowNode, fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const { component } = node
  if (!fields || !component) return {}
  return Object.fromEntries(Object.entries(fields).filter(([field]) => acceptsField(component, node, field)))
}

function checkSessionTweak(node: FlowNode, value: unknown): void {
  if (value === undefined || value === null || value === '') return
  if (typeof value !== 'string') throw new InvalidTweakError(node.id, 'session_id', 'must be a string')
  if (!isValidSessionId(value)) {
    throw new InvalidTweakError(node.id, 'session_id', 'must be 1–255 characters without NUL')
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
