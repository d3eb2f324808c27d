import type { ErrorEnvelopeOptions } from '@session-runtime/service-kit'
import { FlowInvalidError, type GraphProblem } from '../../engine/index.js'
import { Errors, toHttpError } from '../../errors.js'
import type { FlowProblem } from '../../schemas/flows.js'

/** How the run-service's domain errors appear in the error envelope. */
export function errorOptions(bodyLimit: number): ErrorEnvelopeOptions {
  return {
    prefix: 'RUNSVC',
    errors: Errors,
    bodyLimit,
    // A dependency's failure is named: 503 unavailable, 502 refused.
    shown5xx: [502, 503],
    mapError: toHttpError,
    extraBody: (err) => (err instanceof FlowInvalidError ? { problems: err.problems.map(problemBody) } : undefined),
  }
}

/** The engine's problems, in the API's snake_case: each names its node (or nodes, or edge). */
export function problemBody(problem: GraphProblem): FlowProblem {
  const body: FlowProblem = { kind: problem.kind, message: problem.message }
  if ('nodeId' in problem) body.node_id = problem.nodeId
  if ('nodeIds' in problem) body.node_ids = problem.nodeIds
  if ('edgeId' in problem) body.edge_id = problem.edgeId
  if ('componentType' in problem) body.component_type = problem.componentType
  if ('field' in problem) body.field = problem.field
  if ('output' in problem) body.output = problem.output
  if ('at' in problem) body.at = problem.at
  return body
}
