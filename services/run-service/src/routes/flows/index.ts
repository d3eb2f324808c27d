import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorEnvelope } from '@session-runtime/schemas'
import { exceedsJsonLimits, nameRequestSubject } from '@session-runtime/service-kit'
import { Type } from '@sinclair/typebox'
import { createFlow, deleteFlow, getFlow, isUuid, listFlows, updateFlow } from '../../domain/flow-repository.js'
import { type ComponentRegistry, parseFlow, runnableGraph } from '../../engine/index.js'
import { Errors } from '../../errors.js'
import { CreatedFlow, Flow, FlowCreate, FlowIdParams, FlowUpdate, ValidationEnvelope } from '../../schemas/flows.js'

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  409: ErrorEnvelope,
  413: ErrorEnvelope,
  415: ErrorEnvelope,
  422: ValidationEnvelope,
  502: ErrorEnvelope,
  503: ErrorEnvelope,
}

/** "" means no endpoint name; a UUID cannot be one, since the run reads a UUID as a flow ID. */
function endpointName(value: string | null | undefined): string | null | undefined {
  if (value === '') return null
  if (value && isUuid(value))
    throw new Errors.Validation('body/endpoint_name must not be a UUID (it would read as a flow ID)')
  return value
}

export interface FlowLimits {
  maxNodes: number
  maxEdges: number
  maxDepth: number
}

/** The size limits of a stored flow (413 too many nodes or edges, 422 too deep), before anything else is checked. */
function checkFlowLimits(body: unknown, data: { nodes: unknown[]; edges?: unknown[] | undefined }, limits: FlowLimits) {
  if (exceedsJsonLimits(body, { maxDepth: limits.maxDepth })) throw new Errors.FlowTooDeep(limits.maxDepth)
  if (data.nodes.length > limits.maxNodes) throw new Errors.FlowTooManyNodes(data.nodes.length, limits.maxNodes)
  const edges = data.edges?.length ?? 0
  if (edges > limits.maxEdges) throw new Errors.FlowTooManyEdges(edges, limits.maxEdges)
}

/** Every problem of the graph as one 422 (FlowInvalidError, answered with `problems`). */
function validateGraph(flow: { data: unknown }, registry: ComponentRegistry): void {
  runnableGraph(parseFlow(flow, registry))
}

/**
 * The flows API (spec §6), reached through the gateway, which names the tenant.
 * Every lookup is tenant-scoped: another tenant's flow is a 404 like a missing one.
 */
export interface FlowRoutesOptions {
  bodyLimit: number
  limits: FlowLimits
  /** The component types a flow may use. */
  registry: ComponentRegistry
}

const flows: FastifyPluginAsyncTypebox<FlowRoutesOptions> = async (app, opts) => {
  app.addHook('onRequest', app.requireInternalCaller)
  app.addHook('onRequest', app.seedExampleFlows)
  // the flow a request names (validated), in its log lines and, for the gateway's, its answer
  app.addHook('preHandler', async (request, reply) => {
    const { id } = request.params as { id?: string }
    if (id) nameRequestSubject(request, reply, { flowId: id.toLowerCase() })
  })

  app.post(
    '/api/v1/flows/',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: 'Import a Langflow flow',
        description:
          "The file's own id is kept unless it is already taken (here or by another tenant); then the flow " +
          "gets a new id and the response carries the file's as `original_id`.",
        body: FlowCreate,
        response: { 201: CreatedFlow, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body
      checkFlowLimits(body, body.data, opts.limits)
      const name = endpointName(body.endpoint_name)
      validateGraph(body, opts.registry)
      const { flow, originalId } = await createFlow(app.db, request.tenant, {
        id: body.id,
        name: body.name,
        description: body.description ?? null,
        endpoint_name: name ?? null,
        data: body.data,
      })
      nameRequestSubject(request, reply, { flowId: flow.id })
      return reply.code(201).send(originalId ? { ...flow, original_id: originalId } : flow)
    },
  )

  app.get(
    '/api/v1/flows/',
    { schema: { summary: "The caller's flows, oldest first", response: { 200: Type.Array(Flow), ...errors } } },
    async (request) => listFlows(app.db, request.tenant),
  )

  app.get(
    '/api/v1/flows/:id',
    { schema: { summary: 'One flow', params: FlowIdParams, response: { 200: Flow, ...errors } } },
    async (request) => getFlow(app.db, request.tenant, request.params.id.toLowerCase()),
  )

  app.patch(
    '/api/v1/flows/:id',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: 'Change some fields of a flow',
        params: FlowIdParams,
        body: FlowUpdate,
        response: { 200: Flow, ...errors },
      },
    },
    async (request) => {
      const { name, description, data } = request.body
      if (data !== undefined) checkFlowLimits(request.body, data, opts.limits)
      const endpoint = endpointName(request.body.endpoint_name)
      if (data !== undefined) validateGraph({ data }, opts.registry)
      return updateFlow(app.db, request.tenant, request.params.id.toLowerCase(), {
        name,
        description,
        endpoint_name: endpoint,
        data,
      })
    },
  )

  app.delete(
    '/api/v1/flows/:id',
    {
      schema: {
        summary: 'Delete a flow and all its messages',
        params: FlowIdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase()
      await getFlow(app.db, request.tenant, id)
      // Messages first: if the message-store is unavailable the flow stays and the call can be repeated
      // (both deletes are idempotent); the other order could leave messages of a flow that no longer exists.
      await app.messageStore.deleteFlowMessages(request.tenant, id, { requestId: request.id })
      await deleteFlow(app.db, request.tenant, id)
      return reply.code(204).send(null)
    },
  )
}

export default flows
