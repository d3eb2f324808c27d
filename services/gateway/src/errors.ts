import createError from '@fastify/error'
import { commonErrors } from '@session-runtime/service-kit'

/** Every error the gateway answers with; codes are prefixed by the service. */
export const Errors = {
  ...commonErrors('GATEWAY'),
  // Langflow's own wording, so that existing clients recognise them.
  MissingApiKey: createError('GATEWAY_MISSING_API_KEY', 'An API key must be passed as query or header', 401),
  InvalidApiKey: createError('GATEWAY_INVALID_API_KEY', 'Invalid or missing API key', 403),
  MetricsUnauthorized: createError(
    'GATEWAY_METRICS_UNAUTHORIZED',
    '/metrics needs the metrics token as `authorization: Bearer <token>`',
    401,
  ),
  RateLimited: createError('GATEWAY_RATE_LIMITED', 'Rate limit exceeded: %d requests per %d s for this API key', 429),
  UpstreamUnavailable: createError('GATEWAY_UPSTREAM_UNAVAILABLE', 'The %s is unavailable', 503),
  UpstreamTimeout: createError('GATEWAY_UPSTREAM_TIMEOUT', 'The %s did not answer in time', 504),
  UpstreamFailed: createError('GATEWAY_UPSTREAM_FAILED', 'The %s failed to answer', 502),
}
