/**
 * The slow-streams bench's model (whole-stack/streams.ts), in a process of its own so that neither the load
 * generator nor the services share its event loop: the fake OpenAI-compatible model of @session-runtime/stack,
 * streaming `tokens` word chunks `intervalMs` apart (an LLM's pace), the reply `pacedReply(input, tokens)`.
 * It keeps when it wrote each word of each reply (epoch milliseconds, by the call's input), so that the bench
 * can tell the gaps the stack adds from the model's own lateness.
 *
 * IPC: told its settings by the first message, it answers `{ url }` once it listens; then `{ times: inputs }`
 * is answered `{ times: { [input]: number[] } }` (and those are forgotten), `{ forget: true }` forgets all. It
 * stops on SIGTERM and when the parent goes.
 */
import { startFakeModel } from '@session-runtime/stack'
import { pacedReply } from './stream-client.js'

export interface PacedModelStart {
  tokens: number
  intervalMs: number
}

export type PacedModelRequest = { times: string[] } | { forget: true }
export interface PacedModelTimes {
  times: Record<string, number[]>
}

const teardowns: (() => unknown)[] = []
const stop = async () => {
  for (const fn of teardowns.reverse()) await fn()
  process.exit(0)
}

/** When each word of each reply was written, by the call's input. */
const written = new Map<string, number[]>()

process.once('message', (start: PacedModelStart) => {
  void (async () => {
    const model = await startFakeModel(
      { teardown: (fn) => teardowns.push(fn) },
      {
        reply: (call) => pacedReply(call.user, start.tokens),
        chunkIntervalMs: start.intervalMs,
        recordCalls: false,
        onChunk: (call, word, at) => {
          const times = written.get(call.user) ?? []
          if (word === 0) written.set(call.user, times)
          times[word] = performance.timeOrigin + at
        },
      },
    )
    process.on('message', (request: PacedModelRequest) => {
      if ('forget' in request) return void written.clear()
      const times: Record<string, number[]> = {}
      for (const input of request.times) {
        const these = written.get(input)
        if (these) times[input] = these
        written.delete(input)
      }
      process.send?.({ times } satisfies PacedModelTimes)
    })
    process.send?.({ url: model.url })
  })()
})
process.once('SIGTERM', () => void stop())
process.on('disconnect', () => void stop())
