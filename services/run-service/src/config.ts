import { parseBaseUrls } from '@session-runtime/clients'
import { DatabaseSettings } from '@session-runtime/db'
import { bodyLimitSetting, portSetting, ServiceSettings } from '@session-runtime/service-kit'
import { type Static, Type } from '@sinclair/typebox'
import { envSchema } from 'env-schema'

/** Every setting of the run-service, from environment variables only (see .env.example). */
export const ConfigSchema = Type.Object({
  ...ServiceSettings,
  ...DatabaseSettings,
  RUN_SERVICE_PORT: portSetting(7861),
  /**
   * Base URL of the message-store's internal API; several instances: comma-separated URLs, requests spread
   * over those in rotation (docs/run-service.md, "Several instances").
   */
  MESSAGE_STORE_URL: Type.String({ minLength: 1, default: 'http://127.0.0.1:7862' }),
  /** With several MESSAGE_STORE_URL instances: how often each one's `GET /ready` is polled (rotation). */
  MESSAGE_STORE_HEALTH_INTERVAL_MS: Type.Integer({ minimum: 50, default: 1000 }),
  /**
   * How often message writes of failed runs that were never confirmed (the message-store went away mid-write)
   * are settled as failed in the message-store, while any wait (docs/reliability.md).
   */
  UNCONFIRMED_SETTLE_INTERVAL_MS: Type.Integer({ minimum: 10, default: 1000 }),
  /** Body limit of the flows API (flow exports with their component code are large). */
  FLOWS_BODY_LIMIT_BYTES: bodyLimitSetting(8 * 1024 * 1024),
  /** Body limit of the run API (413 above it). */
  RUN_BODY_LIMIT_BYTES: bodyLimitSetting(1024 * 1024),
  /** Longest `input_value` of a run, in characters (413 above it). */
  RUN_INPUT_MAX_CHARS: Type.Integer({ minimum: 1, default: 100_000 }),
  /** Most nodes in a flow's `data.nodes`, checked on import and update (413 RUNSVC_FLOW_TOO_MANY_NODES above it). */
  FLOW_MAX_NODES: Type.Integer({ minimum: 1, default: 500 }),
  /** Most edges in a flow's `data.edges`, checked on import and update (413 RUNSVC_FLOW_TOO_MANY_EDGES above it). */
  FLOW_MAX_EDGES: Type.Integer({ minimum: 1, default: 2000 }),
  /**
   * Deepest nesting of objects and arrays in a flow import or update body (the body itself is level 1;
   * Langflow exports reach about 12). 422 RUNSVC_FLOW_TOO_DEEP above it. At most 1000: JSON.stringify
   * (storing the flow) overflows the call stack on values nested a few thousand levels deep.
   */
  FLOW_MAX_DEPTH: Type.Integer({ minimum: 2, maximum: 1000, default: 64 }),
  /** Deepest nesting of a run's `tweaks` (the tweaks object is level 1, `{node: {field: value}}` is 2); 422 above it. */
  RUN_TWEAKS_MAX_DEPTH: Type.Integer({ minimum: 1, maximum: 1000, default: 8 }),
  /** Most entries in a run's `tweaks`: object keys and array items, counted at every level; 422 above it. */
  RUN_TWEAKS_MAX_KEYS: Type.Integer({ minimum: 1, default: 1000 }),
  /** Parsed flows kept in memory for runs (by ID and row version, so an update is seen at once); 0: none. */
  FLOW_CACHE_SIZE: Type.Integer({ minimum: 0, default: 1000 }),
  /** OpenAI-compatible API for model nodes that set no base URL of their own. */
  OPENAI_BASE_URL: Type.String({ minLength: 1, default: 'https://api.openai.com/v1' }),
  /** API key for model nodes that set none. */
  OPENAI_API_KEY: Type.Optional(Type.String()),
  /** Model for model nodes that name none (the fixtures' Language Model nodes). */
  OPENAI_DEFAULT_MODEL: Type.Optional(Type.String()),
  /** A whole model call (streaming included) slower than this fails the run with a 502. */
  OPENAI_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 120_000 }),
  /**
   * One run at a time per (tenant, flow, session), across every instance (docs/run-service.md, "One run at a
   * time per session"). `false` lets runs of a session overlap, as before issue 15: only to measure the cost.
   */
  ONE_RUN_PER_SESSION: Type.Boolean({ default: true }),
  /**
   * How long an instance's hold on its sessions (and its place in their queues) outlives its last heartbeat: a
   * session held by an instance that died is free again after at most this, plus RUN_SESSION_POLL_MS.
   */
  RUN_SESSION_LEASE_MS: Type.Integer({ minimum: 200, default: 5000 }),
  /** How often an instance renews its lease (at most half of RUN_SESSION_LEASE_MS). */
  RUN_SESSION_HEARTBEAT_MS: Type.Integer({ minimum: 50, default: 1000 }),
  /** How often a run waiting for its session asks again without a wake-up (LISTEN/NOTIFY is the usual one). */
  RUN_SESSION_POLL_MS: Type.Integer({ minimum: 10, default: 1000 }),
  /** Store the built-in example flows (examples/*.json) for each tenant on its first request, once. */
  EXAMPLE_FLOWS: Type.Boolean({ default: true }),
})

export type Config = Static<typeof ConfigSchema>

/** Reads and validates the environment once; throws a readable error naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  parseBaseUrls(config.MESSAGE_STORE_URL, 'MESSAGE_STORE_URL')
  if (config.RUN_SESSION_HEARTBEAT_MS * 2 > config.RUN_SESSION_LEASE_MS) {
    throw new Error(
      `RUN_SESSION_HEARTBEAT_MS (${config.RUN_SESSION_HEARTBEAT_MS}) must be at most half of RUN_SESSION_LEASE_MS (${config.RUN_SESSION_LEASE_MS})`,
    )
  }
  return config
}
