import { type Static, Type } from '@sinclair/typebox'
import { Uuid } from './session-id.js'

/** Longest idle limit accepted, in seconds (a Postgres integer: about 68 years). */
export const RETENTION_MAX_IDLE_SECONDS = 2_147_483_647

/** An idle limit in seconds: an integer of at least 1. */
const MaxIdleSeconds = Type.Integer({
  minimum: 1,
  maximum: RETENTION_MAX_IDLE_SECONDS,
  description: 'Seconds a session may stay without a new message before the sweeper deletes it.',
})

/** GET and PUT /api/v1/monitor/retention: without flow_id the tenant's default, with it one flow's. */
export const RetentionQuery = Type.Object({ flow_id: Type.Optional(Uuid) }, { additionalProperties: false })
export type RetentionQuery = Static<typeof RetentionQuery>

/** PUT /api/v1/monitor/retention: a limit, or null to remove it (a flow then falls back to the tenant's). */
export const RetentionUpdate = Type.Object(
  { max_idle_seconds: Type.Union([MaxIdleSeconds, Type.Null()]) },
  { additionalProperties: false },
)
export type RetentionUpdate = Static<typeof RetentionUpdate>

/** One flow's override of the tenant's default. */
export const FlowRetention = Type.Object({ flow_id: Uuid, max_idle_seconds: MaxIdleSeconds })
export type FlowRetention = Static<typeof FlowRetention>

/** The retention in force for one flow, and which level it comes from. */
export const EffectiveRetention = Type.Object({
  flow_id: Uuid,
  max_idle_seconds: Type.Union([MaxIdleSeconds, Type.Null()], {
    description: "The limit applied to the flow's sessions; null: they are kept.",
  }),
  source: Type.Union([Type.Literal('flow'), Type.Literal('tenant'), Type.Literal('none')], {
    description: "`flow`: the flow's override; `tenant`: the tenant's default; `none`: neither is set.",
  }),
})
export type EffectiveRetention = Static<typeof EffectiveRetention>

/** GET (and the answer of PUT) /api/v1/monitor/retention. */
export const Retention = Type.Object({
  default_max_idle_seconds: Type.Union([MaxIdleSeconds, Type.Null()], {
    description: "The tenant's default limit; null: none (flows without an override keep their sessions).",
  }),
  flows: Type.Array(FlowRetention, {
    description: "Flow overrides, by flow_id; with ?flow_id only that flow's (empty when it has none).",
  }),
  effective: Type.Optional(EffectiveRetention),
})
export type Retention = Static<typeof Retention>

/** POST /api/v1/monitor/retention/sweep */
export const SweepResponse = Type.Object({
  deleted_sessions: Type.Integer({ minimum: 0 }),
  deleted_messages: Type.Integer({ minimum: 0 }),
})
export type SweepResponse = Static<typeof SweepResponse>
