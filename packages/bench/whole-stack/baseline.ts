import Fastify from 'fastify'
import { serveWhenTold } from './forked-server.js'

/**
 * The bench's bare-Fastify baseline, run by run.ts in a child process like the
 * services. Over the IPC channel it receives the two answers to give, recorded
 * from the real stack: `POST /api/v1/run/:id` parses the JSON body (Fastify's
 * own parser, as the run-service does) and sends the recorded run response;
 * `GET /api/v1/monitor/messages` sends the recorded 50-message page. Both are
 * pre-serialized strings: what is left is Fastify's and Node's HTTP cost.
 */

export interface BaselineStart {
  runBody: string
  monitorBody: string
}

serveWhenTold(async (msg: BaselineStart) => {
  const app = Fastify({ logger: { level: 'warn' } })
  const json = (body: string) => (_request: unknown, reply: { type(t: string): { send(b: never): unknown } }) =>
    reply.type('application/json; charset=utf-8').send(body as never)
  app.post('/api/v1/run/:id', json(msg.runBody))
  app.get('/api/v1/monitor/messages', json(msg.monitorBody))
  return app
})
