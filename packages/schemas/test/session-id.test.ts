import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import fc from 'fast-check'
import t from 'tap'
import { isValidSessionId, SESSION_ID_MAX_LENGTH, SessionId } from '../src/index.js'

// The schema as the services check it: Ajv with the options of service-kit's validation plugin (Fastify's
// validator compiler), which compiles `pattern` with the `u` flag and counts lengths in code points.
const ajv = addFormats.default(
  new Ajv.default({ allErrors: false, useDefaults: true, strict: false, coerceTypes: false, removeAdditional: false }),
)
const schemaAccepts = ajv.compile(SessionId)

const HIGH = '\ud800'
const LOW = '\udc00'
const ASTRAL = '😀'

t.test('the predicate and the schema agree on these strings', async (t) => {
  const cases: [string, string, boolean][] = [
    ['one character', 'a', true],
    ['empty', '', false],
    ['255 code points', 'x'.repeat(255), true],
    ['256 code points', 'x'.repeat(256), false],
    ['255 astral characters (510 UTF-16 units)', ASTRAL.repeat(255), true],
    ['256 astral characters', ASTRAL.repeat(256), false],
    ['254 plus one astral', `${'x'.repeat(254)}${ASTRAL}`, true],
    ['NUL', 'a\u0000b', false],
    ['only NUL', '\u0000', false],
    ['a lone high surrogate', HIGH, false],
    ['a lone low surrogate', `a${LOW}`, false],
    ['low then high', `${LOW}${HIGH}`, false],
    ['a pair, then a lone high surrogate', `${ASTRAL}${HIGH}`, false],
    ['a high and a low surrogate: one code point', `${HIGH}${LOW}`, true],
    ['spaces and URL characters', ' a+b:c@d/e%f ', true],
    ['U+FFFD', '\ufffd', true],
    ['U+10FFFF', '\u{10ffff}', true],
  ]
  for (const [name, value, valid] of cases) {
    t.equal(isValidSessionId(value), valid, `predicate: ${name}`)
    t.equal(schemaAccepts(value), valid, `schema: ${name}`)
  }
})

/** One code point or lone surrogate: ordinary, NUL, astral, anything in U+0000–U+10FFFF. */
const unit = fc.oneof(
  fc.constantFrom('a', ' ', '/', '\u0000', ASTRAL, '\ufffd'),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)),
  fc.integer({ min: 0, max: 0x10ffff }).map((code) => String.fromCodePoint(code)),
)

/** Around the length limit: 253–258 code points of one filler, with at most one unit anywhere in them. */
const nearTheLimit = fc
  .record({
    length: fc.integer({ min: SESSION_ID_MAX_LENGTH - 2, max: SESSION_ID_MAX_LENGTH + 3 }),
    filler: fc.constantFrom('x', ASTRAL),
    odd: fc.option(fc.record({ unit, at: fc.nat() }), { nil: undefined }),
  })
  .map(({ length, filler, odd }) => {
    const chars: string[] = Array.from({ length }, () => filler)
    if (odd) chars[odd.at % length] = odd.unit
    return chars.join('')
  })

t.test('the predicate and the schema agree on arbitrary strings', async (t) => {
  const seen = { valid: 0, invalid: 0, nul: 0, loneSurrogate: 0, tooLong: 0, astral: 0 }
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit, maxLength: 20 }), nearTheLimit), (value) => {
      const valid = isValidSessionId(value)
      seen[valid ? 'valid' : 'invalid']++
      if (value.includes('\u0000')) seen.nul++
      if (/[\ud800-\udfff]/u.test(value)) seen.loneSurrogate++
      if ([...value].length > SESSION_ID_MAX_LENGTH) seen.tooLong++
      if (/[\u{10000}-\u{10ffff}]/u.test(value)) seen.astral++
      return valid === schemaAccepts(value)
    }),
    { numRuns: 5000, seed: 20261204 },
  )
  // The generator reaches every kind of string the rule is about.
  for (const [kind, count] of Object.entries(seen)) t.ok(count > 100, `${count} strings: ${kind}`)
})
