import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { RunEvent } from '../../engine/index.js'

/** What a streamed run sends: the run's own events, then exactly one `end` or `error`. */
export type StreamEvent = RunEvent | { event: 'end' | 'error'; data: unknown }

export interface EventStream<E = StreamEvent> {
  /** Sends one event; nothing once the client has gone. */
  write(event: E): void
  /** Sends the stream's last bytes (if any) and ends it. */
  end(last?: string): void
}

/** One event of Langflow's streaming wire format: a JSON object on its own line, then a blank line. */
export function frameEvent(event: StreamEvent): string {
  return `${JSON.stringify(event)}\n\n`
}

/**
 * Answers with a stream (spec §3 "Streaming"): takes the reply over from Fastify, sends the 200 and the
 * `text/event-stream` headers at once (with those set on the reply before), then the events as they come, each
 * framed by `frame` (default `frameEvent`: not `data:`-framed; the Responses route frames OpenAI's SSE events). A failure after this point can only be an `error` event.
 */
export function openEventStream(reply: FastifyReply): EventStream
export function openEventStream<E>(reply: FastifyReply, frame: (event: E) => string): EventStream<E>
export function openEventStream(reply: FastifyReply, frame: (event: StreamEvent) => string = frameEvent): EventStream {
  reply.hijack()
  reply.raw.writeHead(200, {
    // the headers set before (the run's flow and session, for the gateway's log line)
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    'x-request-id': reply.request.id,
  })
  const open = () => !reply.raw.writableEnded && !reply.raw.destroyed
  return {
    write(event) {
      if (open()) reply.raw.write(frame(event))
    },
    end(last) {
      if (last && open()) reply.raw.write(last)
      reply.raw.end()
    },
  }
}
