import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  ErrorEnvelope,
  type Retention,
  RetentionQuery,
  Retention as RetentionSchema,
  RetentionUpdate,
  SweepResponse,
} from '@session-runtime/schemas'
import { SweepBusyError } from '../../domain/retention-sweeper.js'
import { Errors } from '../../errors.js'

const errors = { 400: ErrorEnvelope, 401: ErrorEnvelope, 409: ErrorEnvelope, 422: ErrorEnvelope, 503: ErrorEnvelope }

/** How long POST …/retention/sweep waits for a sweep in progress (any instance's) to end before a 409. */
const SWEEP_WAIT_MS = 30_000

/**
 * Retention of the caller's sessions (docs/message-store.md, Retention): the tenant's default idle limit, a
 * flow's override, and a sweep on request. Scoped by tenant: another tenant's settings and sessions are never
 * read, changed or swept.
 */
const retention: FastifyPluginAsyncTypebox = async (app) => {
  /** The tenant's retention as the API shows it; with `flowId`, that flow's override and effective limit. */
  async function show(tenant: string, flowId: string | undefined): Promise<Retention> {
    const stored = await app.repository.readRetention(tenant, flowId)
    const answer: Retention = {
      default_max_idle_seconds: stored.defaultMaxIdleSeconds,
      flows: stored.flows.map((f) => ({ flow_id: f.flowId, max_idle_seconds: f.maxIdleSeconds })),
    }
    if (flowId !== undefined) {
      const own = stored.flows[0]?.maxIdleSeconds
      answer.effective =
        own !== undefined
          ? { flow_id: flowId, max_idle_seconds: own, source: 'flow' }
          : stored.defaultMaxIdleSeconds !== null
            ? { flow_id: flowId, max_idle_seconds: stored.defaultMaxIdleSeconds, source: 'tenant' }
            : { flow_id: flowId, max_idle_seconds: null, source: 'none' }
    }
    return answer
  }

  app.get(
    '/api/v1/monitor/retention',
    {
      schema: {
        summary: "The tenant's retention: its default idle limit, flow overrides, and with flow_id the effective one",
        querystring: RetentionQuery,
        response: { 200: RetentionSchema, ...errors },
      },
    },
    async (request) => show(request.tenant, request.query.flow_id),
  )

  app.put(
    '/api/v1/monitor/retention',
    {
      schema: {
        summary:
          "Set the tenant's default idle limit, or with flow_id one flow's (null removes it: a flow falls back to the default)",
        querystring: RetentionQuery,
        body: RetentionUpdate,
        response: { 200: RetentionSchema, ...errors },
      },
    },
    async (request) => {
      const { flow_id } = request.query
      await app.repository.writeRetention(request.tenant, flow_id, request.body.max_idle_seconds)
      return show(request.tenant, flow_id)
    },
  )

  app.post(
    '/api/v1/monitor/retention/sweep',
    {
      schema: {
        summary: "Run a retention sweep of the caller's sessions now",
        response: { 200: SweepResponse, ...errors },
      },
    },
    async (request) => {
      try {
        const result = await app.retentionSweeper.sweep(request.tenant, SWEEP_WAIT_MS)
        return { deleted_sessions: result.deletedSessions, deleted_messages: result.deletedMessages }
      } catch (err) {
        if (err instanceof SweepBusyError) throw new Errors.SweepBusy(err.message)
        throw err
      }
    },
  )
}

export default retention
