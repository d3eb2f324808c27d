import { type Readable, Transform } from 'node:stream'
import { EventStreamWatch, LANGFLOW_STREAM, type StreamFormat } from './event-stream-watch.js'

/** What a client of a broken streamed run is told, as the stream's last event. */
export function brokenStreamMessage(upstream: string, requestId: string): string {
  return `The ${upstream} stopped answering during the run, so the run's outcome is unknown (request id ${requestId})`
}

/**
 * A streamed answer (`text/event-stream`) passed on chunk by chunk as it arrives, with one `error` event added
 * at its end when it stops (the connection to the service cut, or its body ended) without a last `end` or
 * `error` event (`format`: Langflow's; OpenAI's response events end with `data: [DONE]` instead): the stream
 * never just stops (spec §3). Nothing is added after a final event, nor for a client
 * that went away: then the answer from upstream is dropped (and its request cancelled, see routes/proxy).
 */
export function guardEventStream(
  body: Readable,
  closing: { message: () => string; onAppend: (cause: string) => void },
  format: StreamFormat = LANGFLOW_STREAM,
): Readable {
  const watch = new EventStreamWatch(format)
  let cause = 'the body ended without an end or error event'
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      watch.push(chunk)
      done(null, chunk)
    },
    flush(done) {
      const tail = watch.closing(closing.message())
      if (tail) closing.onAppend(cause)
      done(null, tail || undefined)
    },
  })
  body.on('error', (error: Error & { code?: string }) => {
    cause = `the connection broke off (${error.code ?? error.name})`
  })
  body.once('close', () => {
    // ended: pipe() has ended `out` already; `out` gone: the client went away
    if (body.readableEnded || out.destroyed || out.writableEnded) return
    body.unpipe(out)
    out.end()
  })
  out.once('close', () => {
    if (!body.readableEnded) body.destroy()
  })
  body.pipe(out)
  return out
}
