import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Upstream } from '../../domain/upstreams.js'

const Downstream = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  url: Type.String(),
  /** The downstream's own /ready body, when it answered with JSON. */
  ready: Type.Optional(Type.Unknown()),
})

const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  services: Type.Record(Type.String(), Downstream),
})

const LiveSchema = { summary: 'Liveness', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
const ReadySchema = {
  summary: "Readiness: every downstream's /ready answers 200",
  response: { 200: Ready, 503: Ready },
}

export interface HealthOptions {
  services: Pick<Upstream, 'name' | 'url'>[]
  timeoutMs: number
}

/** Liveness, and readiness = every downstream's /ready answers 200. No API key needed. */
const health: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { services, timeoutMs }) => {
  app.get('/health', { schema: LiveSchema }, async () => ({
    status: 'ok' as const,
  }))

  app.get('/ready', { schema: ReadySchema }, async (_request, reply) => {
    const checks = await Promise.all(
      services.map(async ({ name, url }) => {
        try {
          const res = await fetch(new URL('/ready', url), { signal: AbortSignal.timeout(timeoutMs) })
          const ready: unknown = await res.json().catch(() => undefined)
          return [name, { status: res.ok ? ('up' as const) : ('down' as const), url, ready }] as const
        } catch {
          return [name, { status: 'down' as const, url }] as const
        }
      }),
    )
    const ok = checks.every(([, check]) => check.status === 'up')
    return reply
      .code(ok ? 200 : 503)
      .send({ status: ok ? ('ok' as const) : ('unavailable' as const), services: Object.fromEntries(checks) })
  })
}

export default health
