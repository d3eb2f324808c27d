import createError from '@fastify/error'

/** The errors every service answers with, coded with the service's prefix (e.g. MSGSTORE_VALIDATION). */
export function commonErrors(prefix: string) {
  return {
    Unauthorized: createError(`${prefix}_UNAUTHORIZED`, 'Missing or invalid internal token', 401),
    MissingTenant: createError(`${prefix}_MISSING_TENANT`, 'Missing or invalid %s header', 400),
    Validation: createError(`${prefix}_VALIDATION`, '%s', 422),
    BadRequest: createError(`${prefix}_BAD_REQUEST`, '%s', 400),
    UnsupportedMediaType: createError(`${prefix}_UNSUPPORTED_MEDIA_TYPE`, 'Unsupported Content-Type; send JSON', 415),
    PayloadTooLarge: createError(
      `${prefix}_PAYLOAD_TOO_LARGE`,
      'Request body is larger than the limit of %d bytes',
      413,
    ),
    NotFound: createError(`${prefix}_ROUTE_NOT_FOUND`, 'Route %s %s not found', 404),
    Unavailable: createError(`${prefix}_UNAVAILABLE`, 'Database unavailable: %s', 503),
    ShuttingDown: createError(`${prefix}_SHUTTING_DOWN`, 'The service is shutting down; try again shortly', 503),
    Internal: createError(`${prefix}_INTERNAL`, 'Internal server error', 500),
  }
}

export type CommonErrors = ReturnType<typeof commonErrors>
