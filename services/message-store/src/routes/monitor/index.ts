import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  BULK_SESSIONS_MAX,
  DeleteSessionsResponse,
  ErrorEnvelope,
  Message,
  MessageIdParams,
  MessageIds,
  MessagesQuery,
  MessageUpdate,
  RenameParams,
  RenameSessionQuery,
  SessionIds,
  SessionIdsQuery,
  SessionParams,
  SessionSummary,
  SessionsQuery,
  Uuid,
} from '@session-runtime/schemas'
import { nameRequestSubject } from '@session-runtime/service-kit'
import { Type } from '@sinclair/typebox'
import { Errors } from '../../errors.js'
import { MessagePage, NextCursor, sendPage, sendSerialized } from '../serialized.js'
import conversations from './conversations.js'
import retention from './retention.js'
import search from './search.js'
import sessionLifecycle, { checkMetadataFilters, requestMetadataFilters } from './session-lifecycle.js'

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  409: ErrorEnvelope,
  413: ErrorEnvelope,
  422: ErrorEnvelope,
  503: ErrorEnvelope,
}
/**
 * The monitor API (spec §5), reached through the gateway. Every query and
 * mutation is scoped by the caller's tenant: another tenant's rows are invisible.
 */
const monitor: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onRequest', app.requireInternalCaller)
  // the flow and the session a request names (validated), in its log lines and, for the gateway's, its answer
  app.addHook('preHandler', async (request, reply) => {
    const query = request.query as { flow_id?: string; session_id?: string }
    const params = request.params as { session_id?: string; old_session_id?: string }
    nameRequestSubject(request, reply, {
      flowId: query.flow_id,
      sessionId: params.session_id ?? params.old_session_id ?? query.session_id,
    })
  })

  await app.register(search)

  app.get(
    '/api/v1/monitor/messages',
    {
      schema: {
        summary: 'List messages with filters, ordering and keyset paging',
        querystring: MessagesQuery,
        response: { 200: MessagePage, ...errors },
      },
    },
    async (request, reply) => sendPage(reply, await app.repository.listMessages(request.tenant, request.query)),
  )

  app.delete(
    '/api/v1/monitor/messages',
    {
      schema: {
        summary: "Delete the caller's messages by ID (unknown or foreign IDs are ignored)",
        body: MessageIds,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await app.repository.deleteMessages(request.tenant, request.body)
      return reply.code(204).send(null)
    },
  )

  app.put(
    '/api/v1/monitor/messages/:id',
    {
      schema: {
        summary: 'Edit a message; a new text marks it edited',
        description:
          'Each field given replaces the stored one; `properties` replaces the whole object (as in Langflow). ' +
          'Feedback is `properties.positive_feedback`: true (thumbs up), false (thumbs down) or null (none); ' +
          "any other value is a 422. The session's feedback counts follow.",
        params: MessageIdParams,
        body: MessageUpdate,
        response: { 200: Message, ...errors },
      },
    },
    async (request, reply) =>
      sendSerialized(reply, 200, await app.repository.updateMessage(request.tenant, request.params.id, request.body)),
  )

  app.get(
    '/api/v1/monitor/messages/sessions',
    {
      schema: {
        summary: 'Distinct session IDs (Langflow-compatible)',
        querystring: SessionIdsQuery,
        response: { 200: Type.Array(Type.String()), ...errors },
      },
    },
    async (request) => app.repository.listSessionIds(request.tenant, request.query.flow_id),
  )

  app.get(
    '/api/v1/monitor/sessions',
    {
      preValidation: checkMetadataFilters,
      schema: {
        summary: 'Session summaries, most recently active first (for the Playground)',
        description:
          'Each summary carries the session `metadata`. `metadata.<key>=<value>` parameters (several: all must ' +
          'match) list only the sessions having those pairs; a malformed one is a 400.',
        querystring: SessionsQuery,
        response: { 200: { ...Type.Array(SessionSummary), headers: NextCursor }, ...errors },
      },
    },
    async (request, reply) =>
      sendPage(
        reply,
        await app.repository.listSessions(request.tenant, request.query, requestMetadataFilters(request)),
      ),
  )

  app.patch(
    '/api/v1/monitor/messages/session/:old_session_id',
    {
      schema: {
        summary: 'Rename a session atomically (never merges into a session that has messages)',
        params: RenameParams,
        querystring: RenameSessionQuery,
        response: { 200: Type.Array(Message), ...errors },
      },
    },
    async (request, reply) => {
      const { new_session_id, flow_id } = request.query
      const { old_session_id } = request.params
      const body = await app.repository.renameSession(request.tenant, old_session_id, new_session_id, flow_id)
      return sendSerialized(reply, 200, body)
    },
  )

  app.delete(
    '/api/v1/monitor/messages/session/:session_id',
    {
      schema: {
        summary: 'Delete a session (a no-op for unknown or foreign sessions)',
        params: SessionParams,
        querystring: Type.Object({ flow_id: Type.Optional(Uuid) }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await app.repository.deleteSessions(request.tenant, [request.params.session_id], request.query.flow_id)
      return reply.code(204).send(null)
    },
  )

  app.delete(
    '/api/v1/monitor/messages/sessions',
    {
      schema: {
        summary: `Delete up to ${BULK_SESSIONS_MAX} sessions`,
        body: SessionIds,
        response: { 200: DeleteSessionsResponse, ...errors },
      },
    },
    async (request) => {
      if (request.body.length > BULK_SESSIONS_MAX) throw new Errors.TooManySessions(BULK_SESSIONS_MAX)
      const n = (await app.repository.deleteSessions(request.tenant, request.body)).length
      return { message: `Deleted ${n} session${n === 1 ? '' : 's'}`, deleted_count: n }
    },
  )

  await app.register(sessionLifecycle)
  await app.register(conversations)
  await app.register(retention)
}

export default monitor
