export {
  default as errorEnvelope,
  type ErrorEnvelopeOptions,
  frameworkErrors,
  serviceServerOptions,
} from './error-envelope.js'
export { type CommonErrors, commonErrors } from './errors.js'
export { default as internalAuth, type InternalAuthOptions } from './internal-auth.js'
export { default as validation } from './validation.js'
