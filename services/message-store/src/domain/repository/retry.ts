import { RETRYABLE_SQLSTATES } from '@session-runtime/db'

/** Retries a transaction that lost a deadlock or serialization race. */
export async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (attempt >= 3 || !code || !RETRYABLE_SQLSTATES.has(code)) throw err
    }
  }
}
