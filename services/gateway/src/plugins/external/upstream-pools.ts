import { logRotationChanges, readyProbe, startUpstreamRotation, type UpstreamRotation } from '@session-runtime/clients'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { BalancedPool } from 'undici'
import type { Service } from '../../domain/upstreams.js'

export interface ServicePool {
  /** Keep-alive connections to every instance in rotation; requests are spread over them. */
  pool: BalancedPool
  /** How many instances the service has (in rotation or not). */
  instances: number
  /** Several instances: which take requests; none with one instance. */
  rotation?: UpstreamRotation
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The pool of each service behind the gateway, by service name. */
    servicePools: Map<string, ServicePool>
  }
}

export interface UpstreamPoolsOptions {
  services: readonly Service[]
  /** How often each instance's `GET /ready` is polled (several instances only). */
  healthIntervalMs: number
  /** How long a poll waits for an instance's answer. */
  healthTimeoutMs: number
  /** Most connections to each instance (UPSTREAM_CONNECTIONS): requests in flight beyond them wait for one. */
  connections: number
}

/**
 * One undici BalancedPool per service, over its instances' origins, kept in step with their health by
 * the rotation of @session-runtime/clients (polls and timers stopped, connections closed in onClose).
 */
async function upstreamPools(app: FastifyInstance, opts: UpstreamPoolsOptions) {
  const pools = new Map<string, ServicePool>()
  for (const service of opts.services) {
    const origins = service.urls.map((url) => new URL(url).origin)
    const pool = new BalancedPool(origins, { connections: opts.connections, pipelining: 1, keepAliveTimeout: 30_000 })
    const rotation =
      origins.length > 1
        ? startUpstreamRotation({
            origins,
            pool,
            intervalMs: opts.healthIntervalMs,
            probe: readyProbe(Math.min(opts.healthTimeoutMs, opts.healthIntervalMs)),
            onChange: logRotationChanges(app.log, service.name),
          })
        : undefined
    pools.set(service.name, { pool, instances: origins.length, rotation })
  }
  app.decorate('servicePools', pools)
  app.addHook('onClose', async () => {
    for (const { pool, rotation } of pools.values()) {
      rotation?.close()
      await pool.destroy()
    }
  })
}

export default fp(upstreamPools, { name: 'gateway-upstream-pools' })
