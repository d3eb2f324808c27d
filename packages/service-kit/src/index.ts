export { bodyLimitSetting, portSetting, ServiceSettings } from './config.js'
export {
  type DatabaseErrorMeaning,
  default as errorEnvelope,
  type ErrorEnvelopeOptions,
  frameworkErrors,
  serviceServerOptions,
} from './error-envelope.js'
export { type CommonErrors, commonErrors } from './errors.js'
export { default as internalAuth, type InternalAuthOptions } from './internal-auth.js'
export { exceedsJsonLimits, type JsonLimitExceeded, type JsonLimits } from './json-limits.js'
export {
  Counter,
  DEFAULT_LATENCY_BUCKETS,
  default as metrics,
  Gauge,
  Histogram,
  type MetricsOptions,
} from './metrics.js'
export { default as openapi, type OpenApiOptions } from './openapi.js'
export {
  CLIENT_CLOSED_STATUS,
  nameRequestSubject,
  RequestLog,
  type RequestLogOptions,
  type RequestSubject,
  takeRequestSubject,
} from './request-log.js'
export { serve } from './serve.js'
export { default as validation } from './validation.js'
