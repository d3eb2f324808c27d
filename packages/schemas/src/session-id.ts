import { Type } from '@sinclair/typebox'

/** Longest session ID accepted, in Unicode code points (spec §2). */
export const SESSION_ID_MAX_LENGTH = 255

/**
 * The characters a session ID may not hold: NUL, and a lone UTF-16 surrogate (`"\ud800"` in JSON), which
 * UTF-8 cannot store. Matched with the `u` flag, as Ajv compiles a schema's `pattern`: there a surrogate
 * pair is one code point outside the excluded range, and only a lone surrogate falls in it.
 */
const SESSION_ID_PATTERN = '^[^\\u0000\\ud800-\\udfff]*$'
const sessionIdCharacters = new RegExp(SESSION_ID_PATTERN, 'u')

/**
 * A session ID: an opaque string of 1–255 Unicode code points without NUL or a lone surrogate.
 * Compared byte for byte: no trimming, no case folding. The one rule, for the request schemas (this schema,
 * checked by Ajv) and for the values that only the engine sees (`isValidSessionId`).
 */
export const SessionId = Type.String({
  minLength: 1,
  maxLength: SESSION_ID_MAX_LENGTH,
  pattern: SESSION_ID_PATTERN,
  description: 'Opaque session ID: 1–255 Unicode code points, no NUL.',
})

/**
 * Whether `value` is a session ID: exactly what `SessionId` accepts (Ajv counts `minLength`/`maxLength` in
 * code points, a lone surrogate counting as one, like the `for…of` below).
 */
export function isValidSessionId(value: string): boolean {
  if (value.length === 0 || value.length > 2 * SESSION_ID_MAX_LENGTH) return false
  let codePoints = 0
  for (const _ of value) codePoints++
  return codePoints <= SESSION_ID_MAX_LENGTH && sessionIdCharacters.test(value)
}

/** A flow ID or message ID. */
export const Uuid = Type.String({ format: 'uuid' })
