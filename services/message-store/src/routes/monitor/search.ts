import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorEnvelope, SearchQuery } from '@session-runtime/schemas'
import { MessagePage, sendPage } from '../serialized.js'

const errors = { 400: ErrorEnvelope, 401: ErrorEnvelope, 422: ErrorEnvelope, 503: ErrorEnvelope }

/** GET /api/v1/monitor/messages/search (registered by the monitor plugin: its tenant and caller checks apply). */
const search: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/v1/monitor/messages/search',
    {
      schema: {
        summary: 'Full-text search of messages: every word (or "quoted phrase") of q, newest first, keyset-paged',
        description:
          'Each word matches as a case-insensitive substring of the text, in any script (CJK too); a quoted phrase ' +
          'matches its words in order. No character of q is an operator. Backed by GIN indexes (no table scan).',
        querystring: SearchQuery,
        response: {
          200: MessagePage,
          ...errors,
        },
      },
    },
    async (request, reply) => sendPage(reply, await app.repository.searchMessages(request.tenant, request.query)),
  )
}

export default search
