// Every size limit of the message-store (issue 6, "Limits"): for each, a request just under it is accepted and
// one just over it is answered with a clear 4xx `{ detail, code }` naming the limit. The body limits follow their
// variables (this app sets small ones); page sizes, batch and bulk sizes and session-ID length are fixed by the
// spec (§2, §5) and by @session-runtime/schemas.
import { randomBytes, randomUUID } from 'node:crypto'
import { exceedsJsonLimits } from '@session-runtime/service-kit'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { buildTestApp, INTERNAL_TOKEN, internalHeaders, messageInput, store } from './helpers/app.js'

// On embedded PGlite (no TEST_DATABASE_URL) an app takes seconds to boot.
t.setTimeout(180_000)

// Small body limits, still large enough for the batch and bulk cases below.
const MONITOR_LIMIT = 16 * 1024
const INTERNAL_LIMIT = 256 * 1024
const app = await buildTestApp(t, {
  env: {
    BODY_LIMIT_BYTES: String(MONITOR_LIMIT),
    INTERNAL_BODY_LIMIT_BYTES: String(INTERNAL_LIMIT),
    BODY_MAX_DEPTH: '10',
  },
})
let tenant = ''
t.beforeEach(() => {
  tenant = `tenant-${randomBytes(4).toString('hex')}`
})
const json = (extra: Record<string, string> = {}) => ({
  ...internalHeaders(tenant),
  'content-type': 'application/json',
  ...extra,
})

/** `body` followed by spaces up to exactly `bytes` bytes (JSON allows trailing whitespace). */
const padTo = (body: string, bytes: number) => {
  if (Buffer.byteLength(body) > bytes) throw new Error('body already longer than the padding')
  return body + ' '.repeat(bytes - Buffer.byteLength(body))
}

/** `[[…[]…]]`: an array `levels` deep (1 = `[]`). */
const nestedArray = (levels: number): unknown => {
  let value: unknown = []
  for (let i = 1; i < levels; i++) value = [value]
  return value
}

t.test('the body limits have their defaults, each from its variable', async (t) => {
  const config = loadConfig({ INTERNAL_TOKEN } as NodeJS.ProcessEnv)
  t.equal(config.BODY_LIMIT_BYTES, 1024 * 1024)
  t.equal(config.INTERNAL_BODY_LIMIT_BYTES, 16 * 1024 * 1024)
  t.equal(config.BODY_MAX_DEPTH, 64)
  t.throws(() => loadConfig({ INTERNAL_TOKEN, BODY_MAX_DEPTH: '5000' } as NodeJS.ProcessEnv), /BODY_MAX_DEPTH/)
  t.throws(() => loadConfig({ INTERNAL_TOKEN, BODY_LIMIT_BYTES: '10' } as NodeJS.ProcessEnv), /BODY_LIMIT_BYTES/)
})

t.test('BODY_LIMIT_BYTES (monitor API): exactly the limit is accepted, one byte more is a 413', async (t) => {
  const body = JSON.stringify([randomUUID(), randomUUID()])
  const ok = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    headers: json(),
    payload: padTo(body, MONITOR_LIMIT),
  })
  t.equal(ok.statusCode, 204)
  const over = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages',
    headers: json(),
    payload: padTo(body, MONITOR_LIMIT + 1),
  })
  t.equal(over.statusCode, 413)
  t.strictSame(over.json(), {
    detail: `Request body is larger than the limit of ${MONITOR_LIMIT} bytes`,
    code: 'MSGSTORE_PAYLOAD_TOO_LARGE',
  })
})

t.test(
  'INTERNAL_BODY_LIMIT_BYTES (internal writes): exactly the limit is stored, one byte more is a 413',
  async (t) => {
    const flow = randomUUID()
    for (const url of ['/internal/messages', '/internal/messages/batch']) {
      const body = (session: string) => {
        const message = messageInput({ flow_id: flow, session_id: session })
        return JSON.stringify(url.endsWith('batch') ? { messages: [message] } : message)
      }
      const ok = await app.inject({
        method: 'POST',
        url,
        headers: json(),
        payload: padTo(body('at-limit'), INTERNAL_LIMIT),
      })
      t.equal(ok.statusCode, 201, `${url}: ${ok.body.slice(0, 200)}`)
      const over = await app.inject({
        method: 'POST',
        url,
        headers: json(),
        payload: padTo(body('over'), INTERNAL_LIMIT + 1),
      })
      t.equal(over.statusCode, 413)
      t.strictSame(over.json(), {
        detail: `Request body is larger than the limit of ${INTERNAL_LIMIT} bytes`,
        code: 'MSGSTORE_PAYLOAD_TOO_LARGE',
      })
    }
    const sessions = await app.inject({
      method: 'GET',
      url: `/api/v1/monitor/messages/sessions?flow_id=${flow}`,
      headers: internalHeaders(tenant),
    })
    t.strictSame(sessions.json(), ['at-limit'], 'only the accepted writes were stored')
  },
)

t.test('BODY_MAX_DEPTH: free JSON (properties, content_blocks) nested too deep is a 422', async (t) => {
  const flow = randomUUID()
  /** A message whose `properties.x` makes the single-message body exactly `levels` deep. */
  const deepMessage = (session: string, levels: number, field: 'properties' | 'content_blocks') => {
    // body → properties → x → …, or body → content_blocks → …
    const value =
      field === 'properties'
        ? `{"x":${'['.repeat(levels - 2)}${']'.repeat(levels - 2)}}`
        : `${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}`
    const payload = `${JSON.stringify(messageInput({ flow_id: flow, session_id: session })).slice(0, -1)},"${field}":${value}}`
    if (levels < 100) {
      t.equal(exceedsJsonLimits(JSON.parse(payload), { maxDepth: levels }), undefined, `${field}: ${levels} levels`)
      t.equal(exceedsJsonLimits(JSON.parse(payload), { maxDepth: levels - 1 }), 'depth', `${field}: not fewer`)
    }
    return payload
  }
  for (const field of ['properties', 'content_blocks'] as const) {
    const ok = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: json(),
      payload: deepMessage('ok', 10, field),
    })
    t.equal(ok.statusCode, 201, `${field}: 10 levels (${ok.body.slice(0, 200)})`)
    // before the limit, 5,000 levels overflowed the call stack (JSON.stringify): a 500
    for (const levels of [11, 5_000, 100_000]) {
      const over = await app.inject({
        method: 'POST',
        url: '/internal/messages',
        headers: json(),
        payload: deepMessage('over', levels, field),
      })
      t.equal(over.statusCode, 422, `${field}: ${levels} levels`)
      t.strictSame(over.json(), {
        detail: 'The request body nests objects and arrays deeper than the limit of 10 levels',
        code: 'MSGSTORE_BODY_TOO_DEEP',
      })
    }
  }
  const batch = (levels: number) =>
    app.inject({
      method: 'POST',
      url: '/internal/messages/batch',
      headers: json(),
      // body → messages → message → properties → x: levels - 4 more
      payload: JSON.stringify({
        messages: [
          { ...messageInput({ flow_id: flow, session_id: 'ok' }), properties: { x: nestedArray(levels - 4) } },
        ],
      }),
    })
  t.equal((await batch(10)).statusCode, 201, 'batch: 10 levels')
  t.equal((await batch(11)).statusCode, 422, 'batch: 11 levels')
  const sessions = await app.inject({
    method: 'GET',
    url: `/api/v1/monitor/messages/sessions?flow_id=${flow}`,
    headers: internalHeaders(tenant),
  })
  t.strictSame(sessions.json(), ['ok'], 'no refused message was stored')

  // the public edit route: body → properties → x → …
  const [message] = await store(app, tenant, [messageInput({ flow_id: flow, session_id: 'ok' })])
  const edit = (levels: number, id = message?.id) =>
    app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${id}`,
      headers: json(),
      payload: `{"properties":{"x":${'['.repeat(levels - 2)}${']'.repeat(levels - 2)}}}`,
    })
  const edited = await edit(10)
  t.equal(edited.statusCode, 200, 'edit: 10 levels')
  t.strictSame(edited.json().properties, { x: nestedArray(8) })
  for (const levels of [11, 5_000]) {
    const over = await edit(levels)
    t.equal(over.statusCode, 422, `edit: ${levels} levels`)
    t.equal(over.json().code, 'MSGSTORE_BODY_TOO_DEEP')
  }
  t.equal((await edit(11, randomUUID())).statusCode, 422, 'checked before the message is looked up')
})

t.test('page sizes (spec §5): messages limit 1–1000, sessions limit 1–500, history limit 1–1000', async (t) => {
  const cases = [
    { url: '/api/v1/monitor/messages', max: 1000 },
    { url: '/api/v1/monitor/sessions', max: 500 },
    { url: `/internal/history?flow_id=${randomUUID()}&session_id=s`, max: 1000 },
  ]
  for (const { url, max } of cases) {
    const sep = url.includes('?') ? '&' : '?'
    const get = (limit: number) =>
      app.inject({ method: 'GET', url: `${url}${sep}limit=${limit}`, headers: internalHeaders(tenant) })
    for (const limit of [1, max]) t.equal((await get(limit)).statusCode, 200, `${url}: limit=${limit}`)
    for (const limit of [0, max + 1]) {
      const res = await get(limit)
      t.equal(res.statusCode, 422, `${url}: limit=${limit}`)
      t.equal(res.json().code, 'MSGSTORE_VALIDATION')
      t.match(res.json().detail, /limit/)
      t.match(res.json().detail, limit === 0 ? /1/ : new RegExp(String(max)))
    }
  }
})

t.test('batch and bulk sizes: 1000 messages per batch, 500 sessions per bulk delete', async (t) => {
  const flow = randomUUID()
  const batch = (n: number) =>
    app.inject({
      method: 'POST',
      url: '/internal/messages/batch',
      headers: json(),
      payload: {
        messages: Array.from({ length: n }, (_, i) => messageInput({ flow_id: flow, session_id: `s${i % 3}` })),
      },
    })
  t.equal((await batch(1000)).statusCode, 201)
  const overBatch = await batch(1001)
  t.equal(overBatch.statusCode, 422)
  t.match(overBatch.json(), { code: 'MSGSTORE_VALIDATION', detail: /messages.*1000/ })

  const bulk = (n: number) =>
    app.inject({
      method: 'DELETE',
      url: '/api/v1/monitor/messages/sessions',
      headers: json(),
      payload: JSON.stringify(Array.from({ length: n }, (_, i) => `s${i}`)),
    })
  const ok = await bulk(500)
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().deleted_count, 3)
  const overBulk = await bulk(501)
  t.equal(overBulk.statusCode, 400)
  t.strictSame(overBulk.json(), { detail: 'At most 500 session IDs per request', code: 'MSGSTORE_TOO_MANY_SESSIONS' })
})

t.test('session IDs: 1–255 code points (spec §2), in bodies, paths and queries alike', async (t) => {
  const flow = randomUUID()
  const longest = '😀'.repeat(255) // 255 code points, 510 UTF-16 units
  const tooLong = 'a'.repeat(256)
  const [stored] = await store(app, tenant, [messageInput({ flow_id: flow, session_id: longest })])
  t.equal(stored?.session_id, longest)
  const write = await app.inject({
    method: 'POST',
    url: '/internal/messages',
    headers: json(),
    payload: messageInput({ flow_id: flow, session_id: tooLong }),
  })
  t.equal(write.statusCode, 422)
  t.match(write.json(), { code: 'MSGSTORE_VALIDATION', detail: /session_id/ })

  const renamed = await app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/messages/session/${encodeURIComponent(longest)}?new_session_id=${encodeURIComponent(`${'😀'.repeat(254)}x`)}`,
    headers: internalHeaders(tenant),
  })
  t.equal(renamed.statusCode, 200, 'renamed to another 255-code-point ID')
  const refused = await app.inject({
    method: 'PATCH',
    url: `/api/v1/monitor/messages/session/${encodeURIComponent(`${'😀'.repeat(254)}x`)}?new_session_id=${tooLong}`,
    headers: internalHeaders(tenant),
  })
  t.equal(refused.statusCode, 422)
  t.match(refused.json(), { code: 'MSGSTORE_VALIDATION', detail: /new_session_id/ })

  const del = await app.inject({
    method: 'DELETE',
    url: `/api/v1/monitor/messages/session/${tooLong}`,
    headers: internalHeaders(tenant),
  })
  t.equal(del.statusCode, 422)
  t.match(del.json(), { code: 'MSGSTORE_VALIDATION', detail: /session_id/ })
  const filter = await app.inject({
    method: 'GET',
    url: `/api/v1/monitor/messages?session_id=${tooLong}`,
    headers: internalHeaders(tenant),
  })
  t.equal(filter.statusCode, 422)
  t.match(filter.json(), { code: 'MSGSTORE_VALIDATION', detail: /session_id/ })
})
