import { DatabaseSettings } from '@session-runtime/db'
import { bodyLimitSetting, portSetting, ServiceSettings } from '@session-runtime/service-kit'
import { type Static, Type } from '@sinclair/typebox'
import { envSchema } from 'env-schema'

/** One entry of REDIS_CLUSTER_NAT_MAP: `host:port=host:port`. */
const NAT_ENTRY = '[^,:=\\s]+:\\d{1,5}=[^,:=\\s]+:\\d{1,5}'

/** Every setting of the message-store, from environment variables only (see .env.example). */
export const ConfigSchema = Type.Object({
  ...ServiceSettings,
  ...DatabaseSettings,
  MESSAGE_STORE_PORT: portSetting(7862),
  /** Write statements in flight at once; writes arriving meanwhile are coalesced into the next one. */
  WRITE_CONCURRENCY: Type.Integer({ minimum: 1, default: 4 }),
  /**
   * Version lookups of cached history reads in flight at once (each one statement); lookups arriving
   * meanwhile are coalesced into the next statement.
   */
  VERSION_LOOKUP_CONCURRENCY: Type.Integer({ minimum: 1, default: 2 }),
  /** Redis for hot histories (one node); without it or REDIS_CLUSTER_NODES an in-process LRU is used. */
  REDIS_URL: Type.Optional(Type.String({ minLength: 1 })),
  /** Seed nodes of a Redis Cluster, `host:port,host:port,…` (instead of REDIS_URL). */
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^[^,:\\s]+:\\d{1,5}(,[^,:\\s]+:\\d{1,5})*$' })),
  /**
   * Addresses of cluster nodes as the store must reach them, when they differ from what the nodes announce
   * (NAT, Docker port mapping, a proxy): `announced=reachable,…`, each `host:port` (ioredis's `natMap`).
   */
  REDIS_CLUSTER_NAT_MAP: Type.Optional(Type.String({ pattern: `^${NAT_ENTRY}(,${NAT_ENTRY})*$` })),
  /** No braces: the session part of every key is a Redis Cluster hash tag. */
  REDIS_KEY_PREFIX: Type.String({ default: 'msgstore:', pattern: '^[^{}]*$' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 250 }),
  CACHE_ENABLED: Type.Boolean({ default: true }),
  CACHE_TTL_SECONDS: Type.Integer({ minimum: 1, default: 3600 }),
  CACHE_MAX_MESSAGES: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }),
  CACHE_MAX_MESSAGE_BYTES: Type.Integer({ minimum: 256, default: 16_384 }),
  /** Bound of the in-process cache (bytes of message JSON). */
  CACHE_MAX_BYTES: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024 }),
  /** Body limit of the monitor API. */
  BODY_LIMIT_BYTES: bodyLimitSetting(1024 * 1024),
  /** Body limit of the internal write API (batches). */
  INTERNAL_BODY_LIMIT_BYTES: bodyLimitSetting(16 * 1024 * 1024),
  /**
   * Deepest nesting of objects and arrays in any request body, monitor or internal (the body is level 1; a
   * message's `properties` start at level 2 in an edit, 3 in a write, 4 in a batch); 422 MSGSTORE_BODY_TOO_DEEP
   * above it. At most 1000: JSON.stringify overflows the call stack on values nested a few thousand levels deep.
   */
  BODY_MAX_DEPTH: Type.Integer({ minimum: 4, maximum: 1000, default: 64 }),
  /**
   * Seconds between retention sweeps (docs/message-store.md, Retention); 0: this instance never sweeps on its
   * own (POST /api/v1/monitor/retention/sweep still does). However many instances run, one sweeps at a time.
   */
  RETENTION_SWEEP_INTERVAL_SECONDS: Type.Integer({ minimum: 0, default: 300 }),
  /** Most sessions one sweep batch deletes (one statement, one short transaction). */
  RETENTION_SWEEP_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
})

export type Config = Static<typeof ConfigSchema>

/** REDIS_CLUSTER_NAT_MAP as ioredis's `natMap`: announced `host:port` → the address to connect to. */
export function clusterNatMap(setting: string | undefined): Record<string, { host: string; port: number }> | undefined {
  if (!setting) return undefined
  const hostPort = (address: string) => {
    const at = address.lastIndexOf(':')
    return { host: address.slice(0, at), port: Number(address.slice(at + 1)) }
  }
  return Object.fromEntries(
    setting.split(',').map((entry) => {
      const [announced, reachable] = entry.split('=') as [string, string]
      return [announced, hostPort(reachable)]
    }),
  )
}

/**
 * Variables that ask for a Redis setup the store does not read: a cluster or sentinels by another name, or
 * connection parts meant to go with a host. Kubernetes' own service variables (`REDIS_SERVICE_HOST`,
 * `REDIS_PORT`, `REDIS_PORT_6379_TCP…`) are not among them: a cluster sets them for any service named redis.
 */
const UNSUPPORTED_REDIS = /^REDIS_(CLUSTER|SENTINEL|NODES|HOSTS?$|PASSWORD$|USERNAME$|USER$|DB$|TLS)/

/**
 * Reads and validates the environment once; throws a readable error naming the bad variable. A Redis setting
 * the store does not know (say `REDIS_CLUSTER` or `REDIS_SENTINELS`) is an error too: the operator asked for a
 * Redis the store would silently not use, leaving each instance on its own cache.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = new Set(Object.keys(ConfigSchema.properties))
  const unknown = Object.keys(env).filter((name) => UNSUPPORTED_REDIS.test(name) && !known.has(name))
  if (unknown.length > 0) {
    throw new Error(
      `unsupported Redis setting ${unknown.join(', ')}: the message-store reads REDIS_URL (one node, credentials and TLS in the URL) or REDIS_CLUSTER_NODES (a cluster, with REDIS_CLUSTER_NAT_MAP), REDIS_KEY_PREFIX and REDIS_COMMAND_TIMEOUT_MS`,
    )
  }
  const config = envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
  if (config.REDIS_URL && config.REDIS_CLUSTER_NODES) {
    throw new Error('set REDIS_URL (one Redis node) or REDIS_CLUSTER_NODES (a Redis Cluster), not both')
  }
  if (config.REDIS_CLUSTER_NAT_MAP && !config.REDIS_CLUSTER_NODES) {
    throw new Error('REDIS_CLUSTER_NAT_MAP maps the nodes of a Redis Cluster: it needs REDIS_CLUSTER_NODES')
  }
  return config
}
