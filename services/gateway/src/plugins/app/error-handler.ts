import type { ErrorEnvelopeOptions } from '@session-runtime/service-kit'
import { Errors } from '../../errors.js'

/** How the gateway's errors appear in the error envelope. */
export function errorOptions(bodyLimit: number): ErrorEnvelopeOptions {
  return {
    prefix: 'GATEWAY',
    errors: Errors,
    bodyLimit,
    // A downstream's state is named: 502 failed, 503 unavailable, 504 timed out.
    shown5xx: [502, 503, 504],
  }
}
