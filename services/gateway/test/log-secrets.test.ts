// Keys and message text never reach the logs, at `info` or even `debug`: runs (plain, streamed, failing at the
// model, refused) and every monitor call go through the real stack, each service logging at `debug` (every
// per-request line; `info` writes a subset of them) into a buffer, and no line of any of the three holds an API
// key, the internal token or a message's text.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { startFakeModel } from '@session-runtime/stack'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { INTERNAL_TOKEN, KEY_A, KEY_B, startStack } from './helpers/stack.js'

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname
const fixture = (name: string) => JSON.parse(readFileSync(`${fixtures}/${name}.json`, 'utf8'))

/** Every text this test sends or has the model answer: none may be logged. */
const texts: string[] = []
const text = (what: string) => {
  const value = `${what}-${randomBytes(6).toString('hex')}`
  texts.push(value)
  return value
}

// A model that answers with a text of its own, or, when asked to, fails with the prompt in its error body
// (as some providers do): the run-service must not copy either into its logs.
const modelReply = text('model-reply')
const model = await startFakeModel(t, {
  reply: () => modelReply,
  failure: (call) => {
    const prompt = JSON.stringify(call.messages)
    return prompt.includes('please-fail') ? `cannot answer ${prompt}` : undefined
  },
})

const logs = { gateway: [] as string[], runService: [] as string[], messageStore: [] as string[] }
const { gateway } = await startStack(t, {
  modelUrl: model.url,
  env: { LOG_LEVEL: 'debug' },
  gateway: { logStream: { write: (line: string) => logs.gateway.push(line) } },
  serviceLogs: {
    level: 'debug',
    runService: { write: (line: string) => logs.runService.push(line) },
    messageStore: { write: (line: string) => logs.messageStore.push(line) },
  },
})

const asA = (opts: InjectOptions) => gateway.inject({ ...opts, headers: { 'x-api-key': KEY_A, ...opts.headers } })

async function importFlow(name: string): Promise<string> {
  const res = await asA({ method: 'POST', url: '/api/v1/flows/', payload: fixture(name) })
  if (res.statusCode !== 201) throw new Error(`import ${name}: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

type Message = { id: string; text: string; session_id: string }

t.test('flows and monitor calls through the stack', async (t) => {
  const simple = await importFlow('langflow-simple-api-test')
  const prompting = await importFlow('langflow-basic-prompting')
  const chatbot = await importFlow('langflow-memory-chatbot')

  for (const [flow, session] of [
    [simple, 'log-s1'],
    [prompting, 'log-s2'],
    [chatbot, 'log-s3'],
    [chatbot, 'log-s3'],
  ] as const) {
    const res = await asA({
      method: 'POST',
      url: `/api/v1/run/${flow}`,
      payload: { input_value: text('input'), session_id: session },
    })
    t.equal(res.statusCode, 200, `run of ${flow} in ${session}`)
  }
  const streamed = await asA({
    method: 'POST',
    url: `/api/v1/run/${chatbot}?stream=true`,
    payload: { input_value: text('streamed-input'), session_id: 'log-s4' },
  })
  t.equal(streamed.statusCode, 200)
  t.match(streamed.body, modelReply, 'the model answered')
  // the key in the query, as browsers' EventSource must send it
  const byQuery = await gateway.inject({
    method: 'POST',
    url: `/api/v1/run/${simple}?x-api-key=${KEY_A}`,
    payload: { input_value: text('query-key-input'), session_id: 'log-s5' },
  })
  t.equal(byQuery.statusCode, 200)

  // failures: the model fails with the prompt in its error; a refused run; bad keys
  const failed = await asA({
    method: 'POST',
    url: `/api/v1/run/${prompting}`,
    payload: { input_value: text('please-fail'), session_id: 'log-s6' },
  })
  t.ok(failed.statusCode >= 500, `a failing model: ${failed.statusCode}`)
  const failedStream = await asA({
    method: 'POST',
    url: `/api/v1/run/${prompting}?stream=true`,
    payload: { input_value: text('please-fail-streamed'), session_id: 'log-s6' },
  })
  t.ok(failedStream.statusCode === 200 || failedStream.statusCode >= 500, 'a failing streamed run')
  const refused = await asA({
    method: 'POST',
    url: `/api/v1/run/${simple}`,
    payload: { input_value: text('refused'), session_id: 42 },
  })
  t.equal(refused.statusCode, 422, 'an invalid run request')
  const wrongKey = await gateway.inject({
    method: 'POST',
    url: `/api/v1/run/${simple}`,
    headers: { 'x-api-key': `${KEY_B}-wrong` },
    payload: { input_value: text('wrong-key') },
  })
  t.equal(wrongKey.statusCode, 403)
  t.equal((await gateway.inject({ url: `/api/v1/monitor/sessions?x-api-key=${KEY_B}` })).statusCode, 200)

  // the monitor API: reads with every filter, an edit, a rename, deletes, a refused edit
  const list = await asA({ url: `/api/v1/monitor/messages?flow_id=${chatbot}&session_id=log-s3&order=DESC` })
  t.equal(list.statusCode, 200)
  const messages = list.json() as Message[]
  t.ok(messages.length >= 4, 'the chatbot session was stored')
  t.ok(
    messages.some((m) => m.text === modelReply),
    'the reply is stored',
  )
  const bySender = await asA({ url: '/api/v1/monitor/messages?sender=User&sender_name=User&limit=2' })
  t.equal(bySender.statusCode, 200)
  const cursor = bySender.headers['x-next-cursor']
  if (typeof cursor === 'string') {
    t.equal((await asA({ url: `/api/v1/monitor/messages?sender=User&limit=2&cursor=${cursor}` })).statusCode, 200)
  }
  t.equal((await asA({ url: `/api/v1/monitor/sessions?flow_id=${chatbot}` })).statusCode, 200)
  t.equal((await asA({ url: '/api/v1/monitor/messages/sessions' })).statusCode, 200)
  const [first, second] = messages
  if (!first || !second) throw new Error('no messages')
  const edited = await asA({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${first.id}`,
    payload: { text: text('edited') },
  })
  t.equal(edited.statusCode, 200)
  const badEdit = await asA({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${first.id}`,
    payload: { text: text('bad-edit'), sender: 42 },
  })
  t.equal(badEdit.statusCode, 422, 'a refused edit')
  const rename = await asA({
    method: 'PATCH',
    url: `/api/v1/monitor/messages/session/log-s3?new_session_id=log-s3-renamed&flow_id=${chatbot}`,
  })
  t.equal(rename.statusCode, 200)
  // a run in the renamed session reads its history (the Memory component)
  const again = await asA({
    method: 'POST',
    url: `/api/v1/run/${chatbot}`,
    payload: { input_value: text('after-rename'), session_id: 'log-s3-renamed' },
  })
  t.equal(again.statusCode, 200)
  t.equal((await asA({ method: 'DELETE', url: '/api/v1/monitor/messages', payload: [second.id] })).statusCode, 204)
  t.equal((await asA({ method: 'DELETE', url: '/api/v1/monitor/messages/session/log-s1' })).statusCode, 204)
  const bulk = await asA({ method: 'DELETE', url: '/api/v1/monitor/messages/sessions', payload: ['log-s2', 'log-s4'] })
  t.equal(bulk.statusCode, 200)
})

t.test('no log line of any service holds a key, the internal token or a message text', async (t) => {
  for (const [service, lines] of Object.entries(logs)) {
    t.ok(lines.length >= 10, `${service} logged (${lines.length} lines)`)
    t.ok(
      lines.some((line) => /"level":20/.test(line)),
      `${service}: debug lines`,
    )
    const all = lines.join('')
    for (const [name, secret] of [
      ['API key A', KEY_A],
      ['API key B', KEY_B],
      ['internal token', INTERNAL_TOKEN],
    ] as const) {
      t.notOk(all.includes(secret), `${service}: no ${name}`)
    }
    const leaked = texts.filter((value) => all.includes(value))
    t.same(leaked, [], `${service}: no message text (${texts.length} checked)`)
  }
  t.ok(
    logs.runService.some((line) => line.includes('"level":50')),
    'the failing model run was logged as an error (checked for text too)',
  )
})
