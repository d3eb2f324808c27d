import { parseBaseUrls } from '@session-runtime/clients'
import { bodyLimitSetting, portSetting, ServiceSettings } from '@session-runtime/service-kit'
import { type Static, Type } from '@sinclair/typebox'
import { envSchema } from 'env-schema'

/** Every setting of the gateway, from environment variables only (see .env.example). */
export const ConfigSchema = Type.Object({
  ...ServiceSettings,
  GATEWAY_PORT: portSetting(7860),
  /** `tenant=key,tenant2=key2`. Empty: a `default` tenant with a random key, created once (hash in DATA_DIR). */
  API_KEYS: Type.String({ default: '' }),
  /** The run-service; several instances: comma-separated base URLs, requests spread over them. */
  RUN_SERVICE_URL: Type.String({ minLength: 1, default: 'http://127.0.0.1:7861' }),
  /** The message-store (monitor API); several instances: comma-separated base URLs. */
  MESSAGE_STORE_URL: Type.String({ minLength: 1, default: 'http://127.0.0.1:7862' }),
  /** With several instances of a service: how often each one's `GET /ready` is polled (rotation). */
  UPSTREAM_HEALTH_INTERVAL_MS: Type.Integer({ minimum: 50, default: 1000 }),
  /**
   * Most keep-alive connections to each instance of a service, i.e. the most requests in flight to it; more wait
   * in the gateway for a free one. A run holds its connection for the whole run (a streamed one as long as its
   * model streams), so this bounds the runs in flight per run-service instance.
   */
  UPSTREAM_CONNECTIONS: Type.Integer({ minimum: 1, default: 4096 }),
  /** Largest request body forwarded on any route (413 above it). Flow exports are large. */
  GATEWAY_BODY_LIMIT_BYTES: bodyLimitSetting(8 * 1024 * 1024),
  // Each service's own body limits, by the same names and defaults as the service reads them: the gateway
  // refuses (413) a body the service would refuse, before forwarding any of it (capped by the limit above).
  /** Body limit of the run API (run-service). */
  RUN_BODY_LIMIT_BYTES: bodyLimitSetting(1024 * 1024),
  /** Body limit of the flows API (run-service). */
  FLOWS_BODY_LIMIT_BYTES: bodyLimitSetting(8 * 1024 * 1024),
  /** Body limit of the monitor API (message-store). */
  BODY_LIMIT_BYTES: bodyLimitSetting(1024 * 1024),
  /** Requests allowed per API key in each RATE_LIMIT_WINDOW_MS; 0 turns the limit off (the default). */
  RATE_LIMIT_MAX: Type.Integer({ minimum: 0, default: 0 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  /** Redis shared by every gateway for the rate-limit counters, e.g. redis://127.0.0.1:6379; empty: in-process. */
  REDIS_URL: Type.String({ default: '' }),
  /** Redis Cluster instead (`host:port,host:port`, some of its nodes); not together with REDIS_URL. */
  REDIS_CLUSTER_NODES: Type.String({ default: '', pattern: '^$|^[^\\s,:]+:\\d+(\\s*,\\s*[^\\s,:]+:\\d+)*$' }),
  /** Prefix of the gateway's rate-limit keys in Redis. */
  RATE_LIMIT_REDIS_PREFIX: Type.String({ minLength: 1, default: 'gateway-rate-limit:' }),
  /** A rate-limit Redis command slower than this fails; the request is then let through uncounted. */
  RATE_LIMIT_REDIS_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 250 }),
  /** Origins allowed to call the API from a browser: `*`, or a comma-separated list; empty: no CORS headers. */
  CORS_ORIGINS: Type.String({ default: '' }),
  /** When set, `GET /metrics` needs `authorization: Bearer <METRICS_TOKEN>` (401 otherwise); empty: open. */
  METRICS_TOKEN: Type.Union([Type.Literal(''), Type.String({ minLength: 16 })], { default: '' }),
  /** How long /ready waits for each downstream's /ready. */
  READY_TIMEOUT_MS: Type.Integer({ minimum: 50, default: 2000 }),
})

export type Config = Static<typeof ConfigSchema>

/** Reads and validates the environment once; throws a readable error naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  parseBaseUrls(config.RUN_SERVICE_URL, 'RUN_SERVICE_URL')
  parseBaseUrls(config.MESSAGE_STORE_URL, 'MESSAGE_STORE_URL')
  // The message-store reads the same two variables and refuses both together: one answer for one .env.
  if (config.REDIS_URL && config.REDIS_CLUSTER_NODES) {
    throw new Error('set REDIS_URL (one Redis node) or REDIS_CLUSTER_NODES (a Redis Cluster), not both')
  }
  return config
}

/** Every instance's base URL of a `*_URL` setting (validated by loadConfig). */
export const instanceUrls = (setting: string) => parseBaseUrls(setting)
