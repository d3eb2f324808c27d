import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Service } from '../../domain/upstreams.js'

const UpDown = Type.Union([Type.Literal('up'), Type.Literal('down')])

const Downstream = Type.Object({
  /** Up when at least one instance is ready. */
  status: UpDown,
  /** The instance whose answer is shown (the first ready one), else the first instance. */
  url: Type.String(),
  /** That instance's own /ready body, when it answered with JSON. */
  ready: Type.Optional(Type.Unknown()),
  /** With several instances: each one's state, by base URL. */
  instances: Type.Optional(Type.Record(Type.String(), UpDown)),
})

const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  services: Type.Record(Type.String(), Downstream),
})

const LiveSchema = { summary: 'Liveness', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
const ReadySchema = {
  summary: 'Readiness: every downstream has an instance whose /ready answers 200',
  response: { 200: Ready, 503: Ready },
}

export interface HealthOptions {
  services: Service[]
  timeoutMs: number
}

interface Check {
  status: 'up' | 'down'
  url: string
  ready?: unknown
}

async function check(url: string, timeoutMs: number): Promise<Check> {
  try {
    const res = await fetch(new URL('/ready', url), { signal: AbortSignal.timeout(timeoutMs) })
    const ready: unknown = await res.json().catch(() => undefined)
    return { status: res.ok ? 'up' : 'down', url, ready }
  } catch {
    return { status: 'down', url }
  }
}

/** A service is up when one of its instances is ready. */
async function checkService({ urls }: Service, timeoutMs: number) {
  const checks = await Promise.all(urls.map((url) => check(url, timeoutMs)))
  const shown = checks.find((one) => one.status === 'up') ?? (checks[0] as Check)
  if (checks.length === 1) return shown
  return { ...shown, instances: Object.fromEntries(checks.map((one) => [one.url, one.status])) }
}

/** Liveness, and readiness = every downstream has a ready instance. No API key needed. */
const health: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { services, timeoutMs }) => {
  app.get('/health', { schema: LiveSchema }, async () => ({
    status: 'ok' as const,
  }))

  app.get('/ready', { schema: ReadySchema }, async (_request, reply) => {
    const checks = await Promise.all(
      services.map(async (service) => [service.name, await checkService(service, timeoutMs)] as const),
    )
    const ok = checks.every(([, check]) => check.status === 'up')
    return reply
      .code(ok ? 200 : 503)
      .send({ status: ok ? ('ok' as const) : ('unavailable' as const), services: Object.fromEntries(checks) })
  })
}

export default health
