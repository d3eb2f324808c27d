import { exceedsJsonLimits } from '@session-runtime/service-kit'
import type { RunRequest } from '../../engine/index.js'
import { Errors } from '../../errors.js'

export interface RunInputLimits {
  inputMaxChars: number
  /** Deepest nesting and most entries (keys and items, at every level) of `tweaks`; 422 beyond either. */
  tweaksMaxDepth: number
  tweaksMaxKeys: number
}

/**
 * The limits of a run's input, checked before the flow is looked up: `input_value` over `inputMaxChars` code
 * points is a 413; `tweaks` nested too deep or with too many entries a 422.
 */
export function checkInputLimits(body: RunRequest, limits: RunInputLimits): void {
  if (typeof body.input_value === 'string' && tooLong(body.input_value, limits.inputMaxChars)) {
    throw new Errors.InputTooLarge(limits.inputMaxChars)
  }
  const tweaks = exceedsJsonLimits(body.tweaks, { maxDepth: limits.tweaksMaxDepth, maxEntries: limits.tweaksMaxKeys })
  if (tweaks === 'depth') throw new Errors.TweaksTooDeep(limits.tweaksMaxDepth)
  if (tweaks === 'entries') throw new Errors.TweaksTooManyKeys(limits.tweaksMaxKeys)
}

/** Code points, counted only when the UTF-16 length could exceed the limit. */
function tooLong(value: string, max: number): boolean {
  if (value.length <= max) return false
  let count = 0
  for (const _ of value) if (++count > max) return true
  return false
}
