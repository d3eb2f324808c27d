import { Message, NEXT_CURSOR_HEADER } from '@session-runtime/schemas'
import { Type } from '@sinclair/typebox'
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

/** Sends messages already serialized one by one as one JSON array. */
export const sendSerializedArray = (reply: FastifyReply, statusCode: number, items: readonly { json: string }[]) =>
  sendSerialized(reply, statusCode, `[${items.map((item) => item.json).join(',')}]`)

/** Sends one page of a keyset-paged list: its rows, and the next page's cursor as a header when more rows follow. */
export function sendPage(reply: FastifyReply, page: { body: string; nextCursor: string | undefined }) {
  if (page.nextCursor) reply.header(NEXT_CURSOR_HEADER, page.nextCursor)
  return sendSerialized(reply, 200, page.body)
}

/** Response headers of a keyset-paged list (documentation only: @fastify/swagger reads a map of header name → schema). */
export const NextCursor = {
  [NEXT_CURSOR_HEADER]: Type.String({
    description: 'The cursor of the next page; present if and only if more rows follow',
  }),
}

/** The 200 response of a keyset-paged list of messages: the array, and the next page's cursor header. */
export const MessagePage = Type.Array(Message, { headers: NextCursor })
