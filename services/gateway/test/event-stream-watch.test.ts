import t from 'tap'
import { EventStreamWatch, errorEvent, eventName, OPENAI_RESPONSE_STREAM } from '../src/domain/event-stream-watch.js'

const bytes = (text: string) => new TextEncoder().encode(text)
const line = (event: string, data: unknown) => `${JSON.stringify({ event, data })}\n\n`
const MESSAGE = 'the run-service stopped answering'
const ERROR = errorEvent(MESSAGE)

/** A watch that has seen `chunks` (strings as UTF-8, or raw bytes). */
function watched(...chunks: (string | Uint8Array)[]) {
  const watch = new EventStreamWatch()
  for (const chunk of chunks) watch.push(typeof chunk === 'string' ? bytes(chunk) : chunk)
  return watch
}

/** `text` as UTF-8, cut into pieces of `size` bytes (multi-byte characters cut too). */
function pieces(text: string, size: number): Uint8Array[] {
  const all = bytes(text)
  const out: Uint8Array[] = []
  for (let at = 0; at < all.length; at += size) out.push(all.subarray(at, at + size))
  return out
}

t.test('the error event is in the run-service framing: one JSON line, then a blank line', async (t) => {
  t.equal(ERROR, `{"event":"error","data":{"error":"${MESSAGE}"}}\n\n`)
  t.same(JSON.parse(ERROR.trim()), { event: 'error', data: { error: MESSAGE } })
})

t.test('eventName', async (t) => {
  t.equal(eventName('{"event":"end","data":{}}'), 'end')
  t.equal(eventName('{"data":{},"event":"error"}'), 'error', 'whatever the key order')
  t.equal(eventName('{"event":"end","data":{'), undefined, 'a cut line is no event')
  t.equal(eventName('"end"'), undefined)
  t.equal(eventName('null'), undefined)
  t.equal(eventName('{"event":1}'), undefined)
})

t.test('tokens, then the stream breaks: an error event is appended', async (t) => {
  const watch = watched(
    line('add_message', { id: 'm1' }),
    line('token', { chunk: 'Hel' }),
    line('token', { chunk: 'lo' }),
  )
  t.equal(watch.lastEvent, 'token')
  t.notOk(watch.final)
  t.equal(watch.closing(MESSAGE), ERROR, 'after the blank line: the event only')
})

t.test('end, then the stream breaks: nothing appended', async (t) => {
  t.equal(watched(line('token', { chunk: 'x' }), line('end', { result: { outputs: [] } })).closing(MESSAGE), '')
  t.equal(watched(line('token', { chunk: 'x' }), line('error', { error: 'boom' })).closing(MESSAGE), '')
  t.equal(watched(`${JSON.stringify({ event: 'end', data: {} })}\n`).closing(MESSAGE), '', 'before its blank line')
  t.equal(watched(JSON.stringify({ event: 'end', data: {} })).closing(MESSAGE), '', 'a whole last line, no newline')
  t.equal(watched(line('end', {}), '{"event":"tok').closing(MESSAGE), '', 'nothing after end, even a cut line')
})

t.test('lines of whitespace only are blank lines (ASCII or not): the event before them stays the last', async (t) => {
  for (const blank of [' ', '\t \r', '\v\f', '\u00a0', '\u2028 \ufeff']) {
    const watch = watched(line('end', {}), `${blank}\n\n`)
    // the name escapes every character: a raw U+2028 would break tap's own output into two lines
    const name = [...blank].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')
    t.equal(watch.lastEvent, 'end', name)
    t.equal(watch.closing(MESSAGE), '')
  }
  t.equal(watched(line('end', {}), '\u00a0x\n').closing(MESSAGE), `\n${ERROR}`, 'not blank: the last line is no event')
})

t.test('a final event that is not the last one does not count', async (t) => {
  t.equal(watched(line('error', { error: 'x' }), line('token', { chunk: 'y' })).closing(MESSAGE), ERROR)
  t.equal(watched(line('end', {}), 'not json\n').closing(MESSAGE), `\n${ERROR}`)
})

t.test('the appended event starts on a line of its own', async (t) => {
  t.equal(watched('').closing(MESSAGE), ERROR, 'an empty stream: the event only')
  t.equal(watched(`${JSON.stringify({ event: 'token', data: {} })}\n`).closing(MESSAGE), `\n${ERROR}`)
  t.equal(watched('{"event":"token","data":{"chu').closing(MESSAGE), `\n\n${ERROR}`, 'a line cut in the middle')
  t.equal(watched('{"event":"end","data":{"res').closing(MESSAGE), `\n\n${ERROR}`, 'an end event cut off is no end')
  t.equal(watched(line('token', {}), '\n\n').closing(MESSAGE), ERROR, 'extra blank lines')
})

t.test('events split across chunks, at every byte', async (t) => {
  const stream = line('add_message', { id: 'm1' }) + line('token', { chunk: 'a b' }) + line('end', { result: 'r' })
  for (let size = 1; size <= 12; size++) {
    t.equal(watched(...pieces(stream, size)).closing(MESSAGE), '', `end last, chunks of ${size} bytes`)
    const cut = stream.slice(0, stream.indexOf('{"event":"end"'))
    t.equal(watched(...pieces(cut, size)).closing(MESSAGE), ERROR, `token last, chunks of ${size} bytes`)
  }
  // the final event is only known once its line is complete
  const watch = watched('{"event":"to', 'ken","data":{}}\n\n{"ev', 'ent":"end","data":{}')
  t.notOk(watch.final, 'an end line without its closing brace')
  watch.push(bytes('}'))
  t.ok(watch.final, 'complete: final')
  watch.push(bytes('\n\n'))
  t.ok(watch.final)
})

t.test('multi-byte UTF-8 characters split across chunks', async (t) => {
  const text = 'héllo wörld — 日本語 🙂'
  const stream = line('token', { chunk: text }) + line('end', { result: { text } })
  const all = bytes(stream)
  // every cut point, those inside a character included
  const missed: number[] = []
  for (let at = 1; at < all.length; at++) {
    if (watched(all.subarray(0, at), all.subarray(at)).closing(MESSAGE) !== '') missed.push(at)
  }
  t.same(missed, [], 'the end event is recognised wherever the stream is cut')
  t.equal(watched(...pieces(stream, 1)).closing(MESSAGE), '', 'one byte at a time')
  t.equal(watched(...pieces(line('token', { chunk: text }), 3)).closing(MESSAGE), ERROR, 'tokens only')
  // the line is decoded whole: a character cut between chunks is not turned into U+FFFD
  for (let size = 1; size <= 4; size++) {
    t.equal(watched(...pieces(line(text, {}), size)).lastEvent, text, `an event named "${text}", ${size}-byte chunks`)
  }
})

t.test('the chunks passed in are neither changed nor kept', async (t) => {
  const chunk = bytes(`${line('token', { chunk: 'a' })}{"event":"end"`)
  const copy = chunk.slice()
  const watch = watched(chunk)
  t.same(chunk, copy, 'unchanged')
  chunk.fill(0x20) // the owner reuses its buffer: the watch kept its own copy of the line under way
  watch.push(bytes(',"data":{}}\n\n'))
  t.ok(watch.final)
})

t.test(
  "OpenAI's response events end with data: [DONE]; a stream stopped before gets OpenAI's error event",
  async (t) => {
    const sse = (type: string) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: 0 })}\n\n`
    const openai = (...chunks: string[]) => {
      const watch = new EventStreamWatch(OPENAI_RESPONSE_STREAM)
      for (const chunk of chunks) watch.push(bytes(chunk))
      return watch
    }
    const done = 'data: [DONE]\n\n'
    t.equal(openai(sse('response.created'), sse('response.completed'), done).closing(MESSAGE), '', 'after [DONE]')
    t.equal(openai(sse('response.completed'), 'data: [DONE]').closing(MESSAGE), '', 'a last [DONE] without its newline')
    for (const [name, chunks] of [
      ['nothing at all', []],
      ['after an event', [sse('response.created')]],
      ['after response.completed but no [DONE]', [sse('response.completed')]],
      ['in the middle of a line', [sse('response.created'), 'event: response.output_text.delta\ndata: {"ty']],
      ["Langflow's end event", [line('end', {})]],
    ] as [string, string[]][]) {
      const tail = openai(...chunks).closing(MESSAGE)
      t.match(tail, /event: error\ndata: \{[^\n]*"code":"GATEWAY_STREAM_BROKEN"[^\n]*\}\n\ndata: \[DONE\]\n\n$/, name)
      t.ok(tail.includes(JSON.stringify(MESSAGE)), `${name}: the message`)
      t.ok(
        /^(\n*)event: error/.test(tail) && (chunks.join('') + tail).includes('\n\nevent: error') === chunks.length > 0,
        `${name}: on a line of its own`,
      )
    }
    t.equal(watched(sse('response.completed'), done).closing(MESSAGE), ERROR, "Langflow's watch does not know [DONE]")
  },
)
