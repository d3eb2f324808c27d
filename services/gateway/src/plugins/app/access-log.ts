import { RequestLog, takeRequestSubject } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { withoutApiKeyParam } from '../../domain/api-keys.js'

/** Polled every few seconds by orchestrators and Prometheus: their line is `debug` while they answer below 400. */
const PROBES = ['/health', '/ready', '/metrics']

/**
 * The gateway's log controller (the `logController` server option): one `request completed` line per client
 * request at `info` — the public entry's, so the one kept in production — without the API key in its URL.
 */
export const accessLogController = () =>
  new RequestLog({ level: 'info', url: (request) => withoutApiKeyParam(request.url), quietRoutes: PROBES })

/**
 * The flow and the session a proxied answer names (the service behind resolved them: a run's flow ID when it
 * was called by endpoint name, its session) go to that line, and not on to the caller.
 */
async function accessLog(app: FastifyInstance) {
  app.addHook('onSend', async (request, reply) => takeRequestSubject(request, reply))
}

export default fp(accessLog, { name: 'gateway-access-log' })
