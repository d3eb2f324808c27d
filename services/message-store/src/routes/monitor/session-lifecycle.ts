import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  EraseSessionsResponse,
  ErrorEnvelope,
  MetadataFilterQuery,
  metadataFilters,
  SessionInFlowQuery,
  SessionMetadataUpdate,
  SessionPathParams,
  SessionSummary,
} from '@session-runtime/schemas'
import type { FastifyRequest } from 'fastify'
import { Errors } from '../../errors.js'
import { sendSerialized } from '../serialized.js'

const errors = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  422: ErrorEnvelope,
  503: ErrorEnvelope,
}

/**
 * The `metadata.<key>=<value>` filters of a request, checked before the query validation (which would drop a
 * parameter it does not know, e.g. a malformed key, and so widen a filter): a bad key, a repeated parameter
 * or a value over 512 characters is a 400.
 */
export async function checkMetadataFilters(request: FastifyRequest) {
  const result = metadataFilters(request.query as Record<string, unknown>)
  if ('error' in result) throw new Errors.InvalidMetadataFilter(result.error)
}

/** The validated metadata filters of a request (see checkMetadataFilters). */
export function requestMetadataFilters(request: FastifyRequest): Record<string, string> {
  const result = metadataFilters(request.query as Record<string, unknown>)
  return 'filters' in result ? result.filters : {}
}

/** The filters of an export or erase: at least one is required (a 400), so that no call reaches every session. */
function requiredFilters(request: FastifyRequest): Record<string, string> {
  const filters = requestMetadataFilters(request)
  if (Object.keys(filters).length === 0) {
    throw new Errors.InvalidMetadataFilter('At least one metadata.<key>=<value> filter is required')
  }
  return filters
}

const NDJSON = 'application/x-ndjson'

const ndjsonResponse = (description: string) => ({
  description,
  content: { [NDJSON]: { schema: { type: 'string', description } } },
})

/** Streams NDJSON chunks as they are read, with backpressure (the next page is read when the socket drained). */
function sendNdjson(reply: import('fastify').FastifyReply, chunks: AsyncIterable<string>) {
  return reply
    .code(200)
    .type(`${NDJSON}; charset=utf-8`)
    .send(Readable.from(chunks, { objectMode: false, highWaterMark: 64 * 1024 }))
}

/**
 * Session metadata, export and erase (issue 14). Registered inside the monitor plugin: its internal-caller
 * check and tenant apply. Every statement is scoped by the caller's tenant.
 */
const sessionLifecycle: FastifyPluginAsyncTypebox = async (app) => {
  app.patch(
    '/api/v1/monitor/sessions/:session_id',
    {
      schema: {
        summary: "Merge metadata into a session's metadata (null removes a key); answers the session summary",
        description:
          'At most 16 keys after the merge (else 422, nothing changes); keys 1–64 characters [A-Za-z0-9_.-], ' +
          'values strings of at most 512 characters. 404 when the session has no messages in the flow.',
        params: SessionPathParams,
        querystring: SessionInFlowQuery,
        body: SessionMetadataUpdate,
        response: { 200: SessionSummary, ...errors },
      },
    },
    async (request, reply) => {
      const { session_id } = request.params
      const json = await app.repository.patchSessionMetadata(
        request.tenant,
        request.query.flow_id,
        session_id,
        request.body.metadata,
      )
      return sendSerialized(reply, 200, json)
    },
  )

  app.get(
    '/api/v1/monitor/sessions/:session_id/export',
    {
      schema: {
        summary: 'Export a session as NDJSON: its summary, then its messages oldest first',
        description:
          'Streams `application/x-ndjson`: the first line is `{"session": <summary with metadata>}`, then one ' +
          'line per message in the monitor message shape, oldest first. Read in pages as the client reads: ' +
          "memory stays flat whatever the session's size.",
        params: SessionPathParams,
        querystring: SessionInFlowQuery,
        response: { 200: ndjsonResponse('One JSON object per line'), ...errors },
      },
    },
    async (request, reply) => {
      const { session_id } = request.params
      const lines = await app.repository.exportSession(request.tenant, request.query.flow_id, session_id)
      if (!lines) throw new Errors.SessionNotFound(`Session ${session_id} not found in flow ${request.query.flow_id}`)
      return sendNdjson(reply, lines)
    },
  )

  app.get(
    '/api/v1/monitor/sessions/export',
    {
      preValidation: checkMetadataFilters,
      schema: {
        summary: 'Export every session matching metadata filters (all flows) as NDJSON, one after another',
        description:
          'At least one `metadata.<key>=<value>` parameter (else 400); a session matches when its metadata has ' +
          'every pair. Each session as in `/sessions/{session_id}/export`: its summary line, then its messages.',
        querystring: MetadataFilterQuery,
        response: { 200: ndjsonResponse('One JSON object per line'), ...errors },
      },
    },
    async (request, reply) => {
      const filters = requiredFilters(request)
      return sendNdjson(reply, app.repository.exportSessions(request.tenant, filters))
    },
  )

  app.delete(
    '/api/v1/monitor/sessions',
    {
      preValidation: checkMetadataFilters,
      schema: {
        summary: 'Erase every session matching metadata filters (all flows), with its messages and cache entries',
        description:
          'At least one `metadata.<key>=<value>` parameter (else 400). Deletes in batches of sessions; the ' +
          "sessions' metadata is cleared as well. Answers how many sessions and messages were deleted.",
        querystring: MetadataFilterQuery,
        response: { 200: EraseSessionsResponse, ...errors },
      },
    },
    async (request) => app.repository.eraseSessions(request.tenant, requiredFilters(request)),
  )
}

export default sessionLifecycle
