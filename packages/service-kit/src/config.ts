import { Type } from '@sinclair/typebox'

/**
 * The settings every service reads the same way, as a TypeBox fragment to spread into its config schema
 * (`Type.Object({ ...ServiceSettings, ... })`); each is documented in .env.example.
 */
export const ServiceSettings = {
  /** Interface to listen on. */
  HOST: Type.String({ default: '127.0.0.1' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  /**
   * Shared secret of the internal network: the gateway adds it to every forwarded request, the run-service
   * to its calls to the message-store, and every /api and /internal request of those two must carry it.
   */
  INTERNAL_TOKEN: Type.String({ minLength: 16 }),
  /**
   * Where the service keeps its files (embedded PGlite under DATA_DIR/<service>, the gateway's created key's
   * hash in gateway-keys.json); `memory://` keeps them in memory only.
   */
  DATA_DIR: Type.String({ default: '.data' }),
  /**
   * Connections the kernel holds for the service, handshake done, until its event loop accepts them (the listen
   * backlog; Linux caps it at net.core.somaxconn). Node's own 511 overflowed when 2,000 streamed runs started
   * within 2 s on a busy machine: connections went unanswered, then timed out (504s at the gateway).
   */
  LISTEN_BACKLOG: Type.Integer({ minimum: 1, default: 4096 }),
}

/** A TCP port to listen on, e.g. `GATEWAY_PORT: portSetting(7860)`. */
export const portSetting = (defaultPort: number) => Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort })

/** A request body limit in bytes (413 above it); at least 1 KiB. */
export const bodyLimitSetting = (defaultBytes: number) => Type.Integer({ minimum: 1024, default: defaultBytes })
