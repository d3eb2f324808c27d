import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import t from 'tap'
import { fakeReply, fakeUsage, freePorts, probeBackends, startFakeModel, stopChild, waitFor } from '../src/index.js'

t.test('free ports differ, and a probe of a port where neither Postgres nor Redis answers', async (t) => {
  const ports = await freePorts(3)
  t.equal(new Set(ports).size, 3)
  const [port = 0] = ports
  const silent = createServer((socket) => socket.on('data', () => socket.end('nonsense')))
  await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve))
  t.teardown(() => silent.close())
  t.same(await probeBackends(`postgres://127.0.0.1:${port}/x`, `redis://127.0.0.1:${port}`), [false, false])
})

t.test('a child that ignores SIGTERM is killed after the bound', async (t) => {
  const child = spawn(
    process.execPath,
    ['-e', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)"],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  )
  await new Promise((resolve) => child.stdout.once('data', resolve))
  t.equal(await stopChild(child, { timeoutMs: 200 }), false, 'not stopped by SIGTERM')
  t.equal(child.signalCode, 'SIGKILL')
  t.equal(await stopChild(child), true, 'stopping a stopped child is done at once')
})

t.test('waitFor names what did not happen', async (t) => {
  await t.rejects(
    waitFor(() => false, 'the sky to fall', 50),
    /the sky to fall: not within 50 ms/,
  )
  let n = 0
  await waitFor(() => ++n === 3, 'three polls', 1000, 1)
  t.equal(n, 3)
})

/** One chat completion request, as the run-service sends it. */
const chat = (url: string, opts: { user?: string; stream?: boolean; signal?: AbortSignal } = {}) =>
  fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify({
      model: 'm',
      stream: opts.stream,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: opts.user ?? 'hi there' },
      ],
    }),
    signal: opts.signal,
  })

t.test('the fake model answers, streams word by word, records every call', async (t) => {
  const model = await startFakeModel(t)
  const res = await chat(model.url)
  t.equal(res.status, 200)
  const body = (await res.json()) as { choices: { message: { content: string } }[] }
  t.equal(body.choices[0]?.message.content, fakeReply('hi there'))
  t.match(model.calls, [
    { model: 'm', stream: false, system: 'be brief', user: 'hi there', authorization: 'Bearer sk-test' },
  ])

  const streamed = await (await chat(model.url, { stream: true })).text()
  const deltas = streamed
    .split('\n\n')
    .filter((event) => event.startsWith('data: {'))
    .map(
      (event) =>
        (JSON.parse(event.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content,
    )
  t.same(deltas, ['', 'You ', 'said: ', 'hi ', 'there', undefined], 'one chunk per word, then the finish')
  t.ok(streamed.endsWith('data: [DONE]\n\n'))
})

t.test("the fake model reports OpenAI's usage: in the answer, and streamed in a last chunk when asked", async (t) => {
  const model = await startFakeModel(t)
  const messages = [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi there' },
  ]
  const usage = fakeUsage({ messages }, fakeReply('hi there'))
  t.same(usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 }, 'a token per word')
  const plain = (await (await chat(model.url)).json()) as { usage: unknown }
  t.same(plain.usage, usage)

  const post = (body: Record<string, unknown>) =>
    fetch(`${model.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream: true, messages, ...body }),
    }).then((res) => res.text())
  const chunks = (text: string) =>
    text
      .split('\n\n')
      .filter((event) => event.startsWith('data: {'))
      .map((event) => JSON.parse(event.slice(6)) as { choices: unknown[]; usage?: unknown })
  const withUsage = chunks(await post({ stream_options: { include_usage: true } }))
  t.same(withUsage.at(-1), { ...withUsage.at(-1), choices: [], usage }, 'the last chunk: no choices, the usage')
  t.equal(model.calls.at(-1)?.includeUsage, true)
  const without = chunks(await post({}))
  t.notOk(
    without.some((chunk) => 'usage' in chunk),
    'no usage chunk unless asked for',
  )
})

t.test('the fake model streams at the pace it is given, and may keep no calls', async (t) => {
  const told: { word: number; at: number }[] = []
  const model = await startFakeModel(t, {
    reply: () => 'one two three four',
    chunkIntervalMs: 40,
    recordCalls: false,
    onChunk: (_call, word, at) => told.push({ word, at }),
  })
  const asked = performance.now()
  const res = await chat(model.url, { stream: true })
  const arrivals: { word: string; at: number }[] = []
  const decoder = new TextDecoder()
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.decode(bytes, { stream: true }).split('\n\n')) {
      if (!event.startsWith('data: {')) continue
      const word = (JSON.parse(event.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta
        .content
      if (word) arrivals.push({ word, at: performance.now() })
    }
  }
  t.same(
    arrivals.map((a) => a.word),
    ['one ', 'two ', 'three ', 'four'],
  )
  // The model writes chunk k at k intervals after the first chunk, or later (a timer never fires early, but for
  // rounding to the millisecond); a late chunk is caught up by the next one, so gaps between chunks may be
  // shorter than the interval on a busy machine: the schedule is what holds.
  const start = told[0]?.at ?? Number.POSITIVE_INFINITY
  const offsets = arrivals.map((a) => a.at - start)
  t.ok(
    offsets.every((offset, k) => offset >= k * 40 - 2),
    `chunk k arrives k × 40 ms after the first was written, or later: ${offsets.map((o) => o.toFixed(1)).join(', ')} ms`,
  )
  t.ok((arrivals.at(-1)?.at ?? 0) - asked >= 118, 'the last chunk 3 intervals after the first or later')
  t.same(model.calls, [], 'no call kept')
  t.same(
    told.map((c) => c.word),
    [0, 1, 2, 3],
    'each word told as it is written',
  )
  t.ok(
    told.every((c, k) => c.at - start >= k * 40 - 2),
    'when it was written: on the schedule, never early',
  )
})

t.test('the fake model fails, hangs, holds, and takes its replies and failures from the test', async (t) => {
  const model = await startFakeModel(t, {
    reply: (call) => `reply to ${call.user}`,
    failure: (call) => (call.user.includes('please-fail') ? `cannot answer ${call.user}` : undefined),
  })
  const failed = await chat(model.url, { user: 'please-fail now' })
  t.equal(failed.status, 500)
  t.match(await failed.json(), { error: { message: 'cannot answer please-fail now' } })

  model.mode = 'fail'
  const broken = await chat(model.url)
  t.equal(broken.status, 500)
  t.match(await broken.json(), { error: { message: 'the fake model is broken' } })

  model.mode = 'hang'
  const abort = new AbortController()
  const hanging = chat(model.url, { signal: abort.signal }).catch((error: Error) => error.name)
  await waitFor(() => model.calls.length === 3, 'the hanging call')
  abort.abort()
  t.equal(await hanging, 'AbortError')
  await waitFor(() => model.abandoned === 1, 'the call to be abandoned')

  model.mode = 'ok'
  model.hold()
  let answered = false
  const held = chat(model.url).then(async (res) => {
    answered = true
    return res.json() as Promise<{ choices: { message: { content: string } }[] }>
  })
  await waitFor(() => model.calls.length === 4, 'the held call')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.notOk(answered, 'no answer while held')
  model.release()
  t.equal((await held).choices[0]?.message.content, 'reply to hi there')
})
