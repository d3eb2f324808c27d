import type { FastifyInstance, FastifyRequest } from 'fastify'

/**
 * A missing or empty body is `{}` (spec §3): the JSON parser of the routes registered in `app`'s scope takes an
 * empty (or blank) body as `{}`; anything else goes through Fastify's own (safe) JSON parser.
 */
export function acceptEmptyJsonBody(app: FastifyInstance): void {
  const defaultJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') return done(null, {})
    return defaultJson(request, body as string, done)
  })
}

/** preValidation hook: a request without a body (no content type at all) has the body `{}`. */
export async function emptyBodyAsObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined) request.body = {}
}
