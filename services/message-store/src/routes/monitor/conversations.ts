import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  ErrorEnvelope,
  FeedbackQuery,
  ForkSessionBody,
  SessionInFlowQuery,
  SessionPathParams,
  SessionSummary,
} from '@session-runtime/schemas'
import { MessagePage, sendPage, sendSerialized } from '../serialized.js'

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  409: ErrorEnvelope,
  422: ErrorEnvelope,
  503: ErrorEnvelope,
}

/**
 * Fork and feedback (issue 15). Registered inside the monitor plugin: its internal-caller check and tenant
 * apply; every statement is scoped by the caller's tenant.
 */
const conversations: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/api/v1/monitor/sessions/:session_id/fork',
    {
      // the body is optional: none is `{}` (a new session ID is generated, every message copied)
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {}
      },
      schema: {
        summary:
          "Fork a session: copy its messages (all, or up to one) and metadata into a new session; 201 with the new session's summary",
        description:
          'The copies keep their order, timestamps and fields, with new message IDs; the original is not changed. ' +
          'The body (optional) may name the new session (`new_session_id`, else a UUID is generated) and the last ' +
          'message to copy (`up_to_message_id`). 404 when the session has no messages in the flow, 409 when the new ' +
          'session already has messages, 422 when `up_to_message_id` is no message of the session.',
        params: SessionPathParams,
        querystring: SessionInFlowQuery,
        body: ForkSessionBody,
        response: { 201: SessionSummary, ...errors },
      },
    },
    async (request, reply) => {
      const json = await app.repository.forkSession(request.tenant, request.query.flow_id, request.params.session_id, {
        newSessionId: request.body.new_session_id,
        upToMessageId: request.body.up_to_message_id,
      })
      return sendSerialized(reply, 201, json)
    },
  )

  app.get(
    '/api/v1/monitor/feedback',
    {
      schema: {
        summary: 'Messages with feedback (properties.positive_feedback true or false) of a flow, newest first',
        description:
          'Optionally of one session (`session_id`). Keyset-paged like the message list: `limit` (1–1000, default ' +
          '100) and the `cursor` of the previous page (its `X-Next-Cursor` header, present if more rows follow).',
        querystring: FeedbackQuery,
        response: {
          200: MessagePage,
          ...errors,
        },
      },
    },
    async (request, reply) => sendPage(reply, await app.repository.listFeedback(request.tenant, request.query)),
  )
}

export default conversations
