/** Which bound a JSON value exceeds, if any (see exceedsJsonLimits). */
export type JsonLimitExceeded = 'depth' | 'entries'

export interface JsonLimits {
  /** Deepest nesting of objects and arrays: a scalar is level 0, `{}` or `[]` level 1, `{"a": {}}` level 2. */
  maxDepth: number
  /** Most entries (object keys and array items), counted at every level. */
  maxEntries?: number
}

/**
 * Checks a parsed JSON value against the limits without recursion, so that a value nested
 * hundreds of thousands of levels deep (a few bytes each) costs no stack; stops at the first
 * bound crossed. The work is bounded by the value's size, and by maxEntries when given.
 */
export function exceedsJsonLimits(value: unknown, limits: JsonLimits): JsonLimitExceeded | undefined {
  const maxEntries = limits.maxEntries ?? Number.POSITIVE_INFINITY
  const stack: Array<{ value: object; depth: number }> = []
  if (typeof value === 'object' && value !== null) {
    if (limits.maxDepth < 1) return 'depth'
    stack.push({ value, depth: 1 })
  }
  let entries = 0
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const children: unknown[] = Array.isArray(item.value) ? item.value : Object.values(item.value)
    entries += children.length
    if (entries > maxEntries) return 'entries'
    for (const child of children) {
      if (typeof child !== 'object' || child === null) continue
      if (item.depth + 1 > limits.maxDepth) return 'depth'
      stack.push({ value: child, depth: item.depth + 1 })
    }
  }
  return undefined
}
