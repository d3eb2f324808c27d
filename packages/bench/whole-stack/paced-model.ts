/**
 * The slow-streams bench's model (whole-stack/streams.ts), in a process of its own so that neither the load
 * generator nor the services share its event loop: the fake OpenAI-compatible model of @session-runtime/stack,
 * streaming `tokens` word chunks `intervalMs` apart (an LLM's pace), the reply `pacedReply(input, tokens)`.
 * Told its settings by the first IPC message, it answers `{ url }` once it listens; it stops on SIGTERM and
 * when the parent goes.
 */
import { startFakeModel } from '@session-runtime/stack'
import { pacedReply } from './stream-client.js'

export interface PacedModelStart {
  tokens: number
  intervalMs: number
}

const teardowns: (() => unknown)[] = []
const stop = async () => {
  for (const fn of teardowns.reverse()) await fn()
  process.exit(0)
}

process.once('message', (start: PacedModelStart) => {
  void (async () => {
    const model = await startFakeModel(
      { teardown: (fn) => teardowns.push(fn) },
      {
        reply: (call) => pacedReply(call.user, start.tokens),
        chunkIntervalMs: start.intervalMs,
        recordCalls: false,
      },
    )
    process.send?.({ url: model.url })
  })()
})
process.once('SIGTERM', () => void stop())
process.on('disconnect', () => void stop())
