import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  ErrorEnvelope,
  HistoryQuery,
  Message,
  MessageBatch,
  MessageInput,
  MessagesThenHistory,
  StoredThenHistory,
  Uuid,
} from '@session-runtime/schemas'
import { Type } from '@sinclair/typebox'
import { sendSerialized, sendSerializedArray } from '../serialized.js'

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  409: ErrorEnvelope,
  413: ErrorEnvelope,
  422: ErrorEnvelope,
  503: ErrorEnvelope,
}

/**
 * The internal API of the run-service: idempotent writes and the history read of
 * the Memory component (the hot path). Never routed by the gateway.
 */
const internal: FastifyPluginAsyncTypebox<{ bodyLimit: number }> = async (app, opts) => {
  app.addHook('onRequest', app.requireInternalCaller)

  app.post(
    '/internal/messages',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: 'Store one message (idempotent on id)',
        body: MessageInput,
        response: { 200: Message, 201: Message, ...errors },
      },
    },
    async (request, reply) => {
      const [stored] = await app.repository.write(request.tenant, [request.body])
      if (!stored) throw new Error('the repository answered no message')
      return sendSerialized(reply, stored.created ? 201 : 200, stored.json)
    },
  )

  app.post(
    '/internal/messages/batch',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: 'Store messages in one statement (idempotent on id)',
        body: MessageBatch,
        response: { 201: Type.Array(Message), ...errors },
      },
    },
    async (request, reply) =>
      sendSerializedArray(reply, 201, await app.repository.write(request.tenant, request.body.messages)),
  )

  app.post(
    '/internal/messages/then-history',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: "Store messages in one statement (idempotent on id), then read a session's history",
        description:
          'One call for what a run does before its Memory component reads: the messages it emitted so far are ' +
          'stored (as `/internal/messages/batch`), then the history is read (as `/internal/history`), so the ' +
          'read sees them.',
        body: MessagesThenHistory,
        response: { 201: StoredThenHistory, ...errors },
      },
    },
    async (request, reply) => {
      const stored = await app.repository.write(request.tenant, request.body.messages)
      const history = await app.repository.readHistory(request.tenant, request.body.history)
      const json = `{"messages":[${stored.map((m) => m.json).join(',')}],"history":${history.toString()}}`
      return sendSerialized(reply, 201, json)
    },
  )

  app.post(
    '/internal/messages/failed',
    {
      bodyLimit: opts.bodyLimit,
      schema: {
        summary: 'Settle messages of a failed run as failed: stored marked, or marked if stored (idempotent on id)',
        description:
          'For writes whose answer was lost: a message that is absent is stored with `error` true and ' +
          '`properties.state` "partial"; a stored one gets the same marks. Either way it leaves the history.',
        body: MessageBatch,
        response: { 200: Type.Array(Message), ...errors },
      },
    },
    async (request, reply) =>
      sendSerializedArray(reply, 200, await app.repository.writeFailed(request.tenant, request.body.messages)),
  )

  app.get(
    '/internal/history',
    {
      schema: {
        summary: "The latest messages of a session, error messages excluded (the Memory component's read)",
        querystring: HistoryQuery,
        response: { 200: Type.Array(Message), ...errors },
      },
    },
    async (request, reply) =>
      sendSerialized(reply, 200, await app.repository.readHistory(request.tenant, request.query)),
  )

  app.delete(
    '/internal/flows/:flow_id/messages',
    {
      schema: {
        summary: 'Delete every message of a flow (the flow was deleted)',
        params: Type.Object({ flow_id: Uuid }),
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await app.repository.deleteFlowMessages(request.tenant, request.params.flow_id)
      return reply.code(204).send(null)
    },
  )
}

export default internal
