import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  postgres: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  database: Type.String({ description: 'postgres or pglite' }),
})

/** Liveness and readiness. Ready needs the database (the flows); the message-store is not checked here. */
const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }))

  app.get('/ready', { schema: { response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
    const postgres = await app.db.query('SELECT 1').then(
      () => 'up' as const,
      () => 'down' as const,
    )
    const body = {
      status: postgres === 'up' ? ('ok' as const) : ('unavailable' as const),
      postgres,
      database: app.db.kind,
    }
    return reply.code(postgres === 'up' ? 200 : 503).send(body)
  })
}

export default health
