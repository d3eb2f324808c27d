import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  postgres: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  database: Type.String({ description: 'postgres or pglite' }),
  redis: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('disabled')]),
  cache: Type.String({ description: 'redis, redis-cluster, memory or disabled' }),
})

/** Liveness and readiness. Ready needs Postgres; Redis is reported, not required. */
const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }))

  app.get('/ready', { schema: { response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
    const postgres = await app.repository.ping().then(
      () => 'up' as const,
      () => 'down' as const,
    )
    const cache = app.repository.cacheState()
    const body = {
      status: postgres === 'up' ? ('ok' as const) : ('unavailable' as const),
      postgres,
      database: app.db.kind,
      redis: cache.kind === 'redis' || cache.kind === 'redis-cluster' ? cache.status : ('disabled' as const),
      cache: cache.kind,
    }
    return reply.code(postgres === 'up' ? 200 : 503).send(body)
  })
}

export default health
