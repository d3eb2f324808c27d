import { Type } from '@sinclair/typebox'

/** Longest session ID accepted, in Unicode code points (spec §2). */
export const SESSION_ID_MAX_LENGTH = 255

/**
 * A session ID: an opaque string of 1–255 Unicode code points without NUL.
 * Compared byte for byte: no trimming, no case folding. Nor a lone UTF-16 surrogate (`"\ud800"` in JSON),
 * which UTF-8 cannot store: the pattern is matched with the `u` flag (Ajv's default), where a
 * surrogate pair is one code point outside the excluded range.
 */
export const SessionId = Type.String({
  minLength: 1,
  maxLength: SESSION_ID_MAX_LENGTH,
  pattern: '^[^\\u0000\\ud800-\\udfff]*$',
  description: 'Opaque session ID: 1–255 Unicode code points, no NUL.',
})

/** A flow ID or message ID. */
export const Uuid = Type.String({ format: 'uuid' })
