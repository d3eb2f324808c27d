import { ErrorEnvelope, Uuid } from '@session-runtime/schemas'
import { type Static, Type } from '@sinclair/typebox'

/** Langflow's endpoint names; empty means none. A UUID is refused (it would read as a flow ID). */
export const EndpointName = Type.Union([
  Type.String({ maxLength: 255, pattern: '^[a-zA-Z0-9_-]*$', description: 'Letters, digits, _ and -; "" = none.' }),
  Type.Null(),
])

/** Langflow's `data`: the graph (`nodes`, `edges`) and whatever else the editor keeps (`viewport`). */
export const FlowData = Type.Object(
  { nodes: Type.Array(Type.Unknown()), edges: Type.Optional(Type.Array(Type.Unknown())) },
  { additionalProperties: true },
)

/**
 * A Langflow flow as exported: the fields below are used, any other top-level field
 * of an export (`is_component`, `tags`, `last_tested_version`, …) is accepted and ignored.
 */
export const FlowCreate = Type.Object(
  {
    id: Type.Optional(Uuid),
    name: Type.String({ minLength: 1, maxLength: 255 }),
    description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    endpoint_name: Type.Optional(EndpointName),
    data: FlowData,
  },
  { additionalProperties: true },
)
export type FlowCreate = Static<typeof FlowCreate>

/** A partial update: only the given fields change; `endpoint_name: null` (or "") removes the name. */
export const FlowUpdate = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    endpoint_name: Type.Optional(EndpointName),
    data: Type.Optional(FlowData),
  },
  { additionalProperties: true },
)
export type FlowUpdate = Static<typeof FlowUpdate>

export const Flow = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  endpoint_name: Type.Union([Type.String(), Type.Null()]),
  data: Type.Unknown({ description: "Langflow's data: { nodes, edges, viewport }, as stored." }),
  created_at: Type.String({ description: 'ISO-8601 UTC' }),
  updated_at: Type.String({ description: 'ISO-8601 UTC' }),
})
export type Flow = Static<typeof Flow>

/** The answer to an import: the stored flow, and which ID the file had if it could not be kept. */
export const CreatedFlow = Type.Object({
  ...Flow.properties,
  original_id: Type.Optional(
    Type.String({
      description:
        "Present only when the file's own id was already taken (here or by another tenant): that id. `id` is the new one.",
    }),
  ),
})

export const FlowIdParams = Type.Object({ id: Uuid })

/** One problem of a flow that cannot run (the engine's GraphProblem, in snake_case). */
export const FlowProblem = Type.Object({
  kind: Type.String({ description: 'unknown-component, missing-node, unknown-field, cycle, …' }),
  message: Type.String(),
  node_id: Type.Optional(Type.String()),
  node_ids: Type.Optional(Type.Array(Type.String())),
  edge_id: Type.Optional(Type.String()),
  component_type: Type.Optional(Type.String()),
  field: Type.Optional(Type.String()),
  output: Type.Optional(Type.String()),
  at: Type.Optional(Type.String()),
})
export type FlowProblem = Static<typeof FlowProblem>

/** A 422: the envelope, and `problems` when the flow itself is invalid (every problem, by node ID). */
export const ValidationEnvelope = Type.Object({
  ...ErrorEnvelope.properties,
  problems: Type.Optional(Type.Array(FlowProblem)),
})
