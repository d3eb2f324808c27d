import type { FastifyReply } from 'fastify'

/**
 * Sends JSON text that Postgres or the cache already built in the shape of the
 * route's response schema, without parsing and serializing it again (the
 * expensive part of every read: see docs/benchmarks.md).
 */
export function sendSerialized(reply: FastifyReply, statusCode: number, json: string | Buffer) {
  // Fastify sends a string or Buffer with a JSON content type as it is.
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .send(json as never)
}
