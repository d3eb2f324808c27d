import { randomBytes, randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import {
  buildTestApp,
  cacheKind,
  INTERNAL_TOKEN,
  internalHeaders,
  messageInput,
  storageKind,
  store,
  type TestApp,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

interface Msg {
  id: string
  flow_id: string
  session_id: string
  text: string
}

// One app for most of the file (a PGlite start is slow); every test has a tenant of its own.
const app = await buildTestApp(t)
let A = ''
t.beforeEach(() => {
  A = `tenant-${randomBytes(4).toString('hex')}`
})

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** A request with a URL exactly as given (no further encoding). */
function raw(method: Method, url: string, payload?: unknown, headers: Record<string, string> = internalHeaders(A)) {
  return app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as never }) })
}

/** A request whose body is sent exactly as the given text, as JSON. */
function rawJson(method: Method, url: string, body: string, target: TestApp = app) {
  return target.inject({
    method,
    url,
    headers: { ...internalHeaders(A), 'content-type': 'application/json' },
    payload: body,
  })
}

const q = encodeURIComponent

function assertError(
  t: Test,
  res: { statusCode: number; body: string; headers: Record<string, unknown> },
  status: number,
  code?: string,
) {
  t.equal(res.statusCode, status, `status ${status}: ${res.body.slice(0, 200)}`)
  t.match(String(res.headers['content-type']), /^application\/json/, 'a JSON body')
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(res.body)
  } catch {
    t.fail(`not JSON: ${res.body.slice(0, 200)}`)
  }
  t.same(Object.keys(body).sort(), ['code', 'detail'], 'exactly the error envelope')
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, 'a detail')
  t.match(body.code, /^MSGSTORE_[A-Z_]+$/, 'a code of this service')
  if (code) t.equal(body.code, code)
  return body as { detail: string; code: string }
}

async function listAll(tenant = A): Promise<Msg[]> {
  const res = await raw('GET', '/api/v1/monitor/messages?limit=1000', undefined, internalHeaders(tenant))
  if (res.statusCode !== 200) throw new Error(`list failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

const EMOJI = '😀'

t.test('session IDs: NUL or more than 255 code points are 422 on every route', async (t) => {
  const flow_id = randomUUID()
  const [m] = (await store(app, A, [messageInput({ flow_id, session_id: 'valid' })])) as unknown as Msg[]
  if (!m) throw new Error('store failed')
  const invalid: Array<[string, string]> = [
    ['NUL', 'a\u0000b'],
    ['only NUL', '\u0000'],
    ['256 code points', 'x'.repeat(256)],
    ['256 emoji', EMOJI.repeat(256)],
    ['empty', ''],
  ]
  for (const [name, id] of invalid) {
    const requests: Array<[string, Promise<Awaited<ReturnType<typeof raw>>>]> = [
      ['store', raw('POST', '/internal/messages', messageInput({ flow_id, session_id: id }))],
      [
        'store batch',
        raw('POST', '/internal/messages/batch', { messages: [messageInput({ flow_id, session_id: id })] }),
      ],
      ['history', raw('GET', `/internal/history?flow_id=${flow_id}&session_id=${q(id)}`)],
      ['list', raw('GET', `/api/v1/monitor/messages?session_id=${q(id)}`)],
      ['edit', raw('PUT', `/api/v1/monitor/messages/${m.id}`, { session_id: id })],
      ['rename to', raw('PATCH', `/api/v1/monitor/messages/session/valid?new_session_id=${q(id)}`)],
      ['bulk delete', raw('DELETE', '/api/v1/monitor/messages/sessions', ['valid', id])],
    ]
    if (id !== '') {
      // An empty path segment is another route; every other invalid ID reaches these.
      requests.push(
        ['rename from', raw('PATCH', `/api/v1/monitor/messages/session/${q(id)}?new_session_id=ok`)],
        ['delete', raw('DELETE', `/api/v1/monitor/messages/session/${q(id)}`)],
      )
    }
    for (const [route, pending] of requests) {
      const res = await pending
      const body = assertError(t, res, 422, 'MSGSTORE_VALIDATION')
      t.match(body.detail, /session_id|body\/1|body\/messages/, `${name} in ${route}: the detail names the field`)
    }
  }
  t.same(
    (await listAll()).map((x) => [x.id, x.session_id]),
    [[m.id, 'valid']],
    'nothing stored, edited, renamed or deleted',
  )
})

t.test('session IDs: 255 code points of emoji are accepted (maxLength counts code points)', async (t) => {
  const flow_id = randomUUID()
  const long = EMOJI.repeat(255)
  t.equal(long.length, 510, '510 UTF-16 code units')
  const half = EMOJI.repeat(128)
  const stored = (await store(app, A, [
    messageInput({ flow_id, session_id: long, text: 'long' }),
    messageInput({ flow_id, session_id: half, text: 'half' }),
  ])) as unknown as Msg[]
  t.same(
    stored.map((m) => m.session_id),
    [long, half],
  )
  const h = await raw('GET', `/internal/history?flow_id=${flow_id}&session_id=${q(long)}`)
  t.equal(h.statusCode, 200)
  t.same(
    (h.json() as Msg[]).map((m) => [m.session_id, m.text]),
    [[long, 'long']],
  )
  const listed = await raw('GET', `/api/v1/monitor/messages?session_id=${q(long)}`)
  t.same(
    (listed.json() as Msg[]).map((m) => m.text),
    ['long'],
  )
  const renamed = await raw(
    'PATCH',
    `/api/v1/monitor/messages/session/${q(long)}?new_session_id=${q(`${'🎉'.repeat(255)}`)}`,
  )
  t.equal(renamed.statusCode, 200)
  t.same(
    (renamed.json() as Msg[]).map((m) => m.session_id),
    ['🎉'.repeat(255)],
  )
  const del = await raw('DELETE', `/api/v1/monitor/messages/session/${q('🎉'.repeat(255))}`)
  t.equal(del.statusCode, 204)
  t.same(
    (await listAll()).map((m) => m.session_id),
    [half],
  )
  const bulk = await raw('DELETE', '/api/v1/monitor/messages/sessions', [half, long])
  t.same(bulk.json(), { message: 'Deleted 1 session', deleted_count: 1 })
})

t.test('a 10,000-character session ID in the path or the query is a 422, never 414 or 500', async (t) => {
  const flow_id = randomUUID()
  const [m] = (await store(app, A, [messageInput({ flow_id, session_id: 'x' })])) as unknown as Msg[]
  for (const id of ['a'.repeat(10_000), EMOJI.repeat(10_000), 'b'.repeat(100_000)]) {
    const n = `${id.length} code units`
    for (const res of [
      await raw('DELETE', `/api/v1/monitor/messages/session/${q(id)}`),
      await raw('PATCH', `/api/v1/monitor/messages/session/${q(id)}?new_session_id=y`),
      await raw('PATCH', `/api/v1/monitor/messages/session/x?new_session_id=${q(id)}`),
      await raw('GET', `/api/v1/monitor/messages?session_id=${q(id)}`),
      await raw('GET', `/internal/history?flow_id=${flow_id}&session_id=${q(id)}`),
    ]) {
      assertError(t, res, 422, 'MSGSTORE_VALIDATION')
      t.not(res.statusCode, 414, n)
    }
  }
  t.same(await listAll(), [m], 'nothing changed')
})

t.test('special characters in session IDs round-trip byte for byte, percent-decoded exactly once', async (t) => {
  const flow_id = randomUUID()
  const special = [
    'a+b',
    'a b',
    ' padded ',
    'time:12:00',
    'user@example.com',
    'a/b',
    'a%2Fb',
    '100%',
    '%41',
    'A',
    '50% off?&x=1#frag',
    'emoji 😀 and ü and 中文',
    'tab\tand\nnewline',
    'Session',
    'session',
    // Not '.' or '..': WHATWG URL clients (light-my-request too) resolve such a path
    // segment, even percent-encoded, before sending it.
  ]
  const stored = (await store(
    app,
    A,
    special.map((session_id, i) => messageInput({ flow_id, session_id, text: `t${i}` })),
  )) as unknown as Msg[]
  t.same(
    stored.map((m) => m.session_id),
    special,
    'stored as given',
  )

  const distinct = await raw('GET', '/api/v1/monitor/messages/sessions')
  t.same([...(distinct.json() as string[])].sort(), [...special].sort(), 'the distinct list has each ID, unchanged')
  const summaries = await raw('GET', '/api/v1/monitor/sessions?limit=500')
  t.same([...(summaries.json() as Array<{ session_id: string }>).map((s) => s.session_id)].sort(), [...special].sort())

  for (const [i, id] of special.entries()) {
    const h = await raw('GET', `/internal/history?flow_id=${flow_id}&session_id=${q(id)}`)
    t.same(
      (h.json() as Msg[]).map((m) => [m.session_id, m.text]),
      [[id, `t${i}`]],
      `history of ${JSON.stringify(id)}`,
    )
    const listed = await raw('GET', `/api/v1/monitor/messages?session_id=${q(id)}`)
    t.same(
      (listed.json() as Msg[]).map((m) => [m.session_id, m.text]),
      [[id, `t${i}`]],
      `list of ${JSON.stringify(id)}`,
    )
  }

  // Paths: encoded once, decoded once. '%2541' is '%41', never 'A'.
  for (const [i, id] of special.entries()) {
    const renamed = `${id}→${i}`
    const res = await raw('PATCH', `/api/v1/monitor/messages/session/${q(id)}?new_session_id=${q(renamed)}`)
    t.equal(res.statusCode, 200, `rename ${JSON.stringify(id)}`)
    t.same(
      (res.json() as Msg[]).map((m) => [m.session_id, m.text]),
      [[renamed, `t${i}`]],
      `only ${JSON.stringify(id)} was renamed`,
    )
  }
  const after = await listAll()
  t.same(
    after.map((m) => m.session_id),
    special.map((id, i) => `${id}→${i}`),
    'each renamed exactly once, no other session touched',
  )
  for (const [i, id] of special.entries()) {
    if (i % 2 === 0) continue
    const res = await raw('DELETE', `/api/v1/monitor/messages/session/${q(`${id}→${i}`)}`)
    t.equal(res.statusCode, 204)
  }
  t.same(
    (await listAll()).map((m) => m.session_id),
    special.map((id, i) => `${id}→${i}`).filter((_, i) => i % 2 === 0),
    'deleting by path removed exactly the named sessions',
  )
})

t.test('paths: literal + : @ and a percent-encoded slash name the session as written', async (t) => {
  const flow_id = randomUUID()
  await store(
    app,
    A,
    ['a+b', 'a b', 'user@host:1', 'a/b', 'a%2Fb', '100%', '%41', 'A'].map((session_id) =>
      messageInput({ flow_id, session_id, text: session_id }),
    ),
  )
  const sessions = async () => (await listAll()).map((m) => m.session_id)
  // '+' in a path is a plus, not a space.
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/a+b')).statusCode, 204)
  t.same(await sessions(), ['a b', 'user@host:1', 'a/b', 'a%2Fb', '100%', '%41', 'A'])
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/user@host:1')).statusCode, 204)
  t.same(await sessions(), ['a b', 'a/b', 'a%2Fb', '100%', '%41', 'A'])
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/a%2Fb')).statusCode, 204, 'a%2Fb means a/b')
  t.same(await sessions(), ['a b', 'a%2Fb', '100%', '%41', 'A'])
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/a%252Fb')).statusCode, 204, 'a%252Fb means a%2Fb')
  t.same(await sessions(), ['a b', '100%', '%41', 'A'])
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/%2541')).statusCode, 204, '%2541 means %41')
  t.same(await sessions(), ['a b', '100%', 'A'])
  const pct = await raw('PATCH', '/api/v1/monitor/messages/session/100%25?new_session_id=100%25%20done')
  t.equal(pct.statusCode, 200, 'a session literally named 100%')
  t.same(await sessions(), ['a b', '100% done', 'A'])
  t.equal((await raw('DELETE', '/api/v1/monitor/messages/session/a%20b')).statusCode, 204)
  t.same(await sessions(), ['100% done', 'A'])
  // A raw '%' that starts no escape is a malformed URL: a 400 in our envelope, not a 500.
  assertError(t, await raw('DELETE', '/api/v1/monitor/messages/session/100%'), 400)
  assertError(t, await raw('DELETE', '/api/v1/monitor/messages/session/%E0%A4%A'), 400)
  t.same(await sessions(), ['100% done', 'A'])
})

t.test('invalid UUIDs are 422 wherever a UUID is expected', async (t) => {
  const flow_id = randomUUID()
  const [m] = (await store(app, A, [messageInput({ flow_id, session_id: 's' })])) as unknown as Msg[]
  if (!m) throw new Error('store failed')
  const bad = ['not-a-uuid', `${flow_id}0`, flow_id.replaceAll('-', ''), 'g0000000-0000-0000-0000-000000000000']
  for (const id of bad) {
    const requests: Array<[string, Awaited<ReturnType<typeof raw>>]> = [
      ['list flow_id', await raw('GET', `/api/v1/monitor/messages?flow_id=${q(id)}`)],
      ['distinct flow_id', await raw('GET', `/api/v1/monitor/messages/sessions?flow_id=${q(id)}`)],
      ['summaries flow_id', await raw('GET', `/api/v1/monitor/sessions?flow_id=${q(id)}`)],
      ['history flow_id', await raw('GET', `/internal/history?flow_id=${q(id)}&session_id=s`)],
      ['rename flow_id', await raw('PATCH', `/api/v1/monitor/messages/session/s?new_session_id=t&flow_id=${q(id)}`)],
      ['delete session flow_id', await raw('DELETE', `/api/v1/monitor/messages/session/s?flow_id=${q(id)}`)],
      ['edit id', await raw('PUT', `/api/v1/monitor/messages/${q(id)}`, { text: 'x' })],
      ['delete ids', await raw('DELETE', '/api/v1/monitor/messages', [m.id, id])],
      ['store id', await raw('POST', '/internal/messages', messageInput({ flow_id, session_id: 's', id }))],
      ['store flow_id', await raw('POST', '/internal/messages', messageInput({ flow_id: id, session_id: 's' }))],
      ['delete flow', await raw('DELETE', `/internal/flows/${q(id)}/messages`)],
    ]
    for (const [name, res] of requests) {
      const body = assertError(t, res, 422, 'MSGSTORE_VALIDATION')
      t.match(body.detail, /uuid|id/, `${name} ${id}`)
    }
  }
  t.same(await listAll(), [m], 'nothing changed')
})

t.test('query parameters: unknown order_by, bad order, limit and offset are 422', async (t) => {
  await store(app, A, [messageInput({ flow_id: randomUUID(), session_id: 's' })])
  const cases: Array<[string, RegExp]> = [
    ['order_by=text', /order_by/],
    ['order_by=id', /order_by/],
    ['order_by=', /order_by/],
    ['order_by=timestamp;DROP', /order_by/],
    ['order=sideways', /order/],
    ['order=ASC%20', /order/],
    ['limit=0', /limit/],
    ['limit=-1', /limit/],
    ['limit=1001', /limit/],
    ['limit=abc', /limit/],
    ['limit=1.5', /limit/],
    ['limit=', /limit/],
    ['offset=-1', /offset/],
    ['offset=x', /offset/],
    ['cursor=', /cursor/],
  ]
  for (const [query, field] of cases) {
    const res = await raw('GET', `/api/v1/monitor/messages?${query}`)
    const body = assertError(t, res, 422, 'MSGSTORE_VALIDATION')
    t.match(body.detail, field, `${query}: names the field`)
  }
  for (const query of ['limit=0', 'limit=501', 'limit=-5', 'limit=many']) {
    assertError(t, await raw('GET', `/api/v1/monitor/sessions?${query}`), 422, 'MSGSTORE_VALIDATION')
  }
  for (const query of ['limit=0', 'limit=1001', 'order=up']) {
    assertError(
      t,
      await raw('GET', `/internal/history?flow_id=${randomUUID()}&session_id=s&${query}`),
      422,
      'MSGSTORE_VALIDATION',
    )
  }
  // Query strings are coerced as usual: limit=1 is the number 1.
  const one = await raw('GET', '/api/v1/monitor/messages?limit=1&order=DESC&order_by=sender')
  t.equal(one.statusCode, 200)
  t.equal(one.json().length, 1)
})

t.test('bodies: malformed JSON is 400; wrong types are 422, never coerced', async (t) => {
  const flow_id = randomUUID()
  const [m] = (await store(app, A, [messageInput({ flow_id, session_id: 's', text: 'original' })])) as unknown as Msg[]
  if (!m) throw new Error('store failed')
  const before = await listAll()

  for (const [method, url] of [
    ['PUT', `/api/v1/monitor/messages/${m.id}`],
    ['DELETE', '/api/v1/monitor/messages'],
    ['DELETE', '/api/v1/monitor/messages/sessions'],
    ['POST', '/internal/messages'],
    ['POST', '/internal/messages/batch'],
  ] as Array<[Method, string]>) {
    for (const text of ['{"text": "x"', '{text: "x"}', "['s']", 'nul\u0000', '{"a":1}}']) {
      const body = assertError(t, await rawJson(method, url, text), 400, 'MSGSTORE_BAD_REQUEST')
      t.match(body.detail, /JSON/, `${method} ${url}: ${JSON.stringify(text)}`)
    }
  }

  const put = (payload: unknown) => raw('PUT', `/api/v1/monitor/messages/${m.id}`, payload)
  for (const [payload, field] of [
    [{ session_id: 42 }, /session_id/],
    [{ text: 5 }, /text/],
    [{ text: null }, /text/],
    [{ text: ['x'] }, /text/],
    [{ edit: 'true' }, /edit/],
    [{ error: 1 }, /error/],
    [{ files: 'a.txt' }, /files/],
    [{ files: [1] }, /files/],
    [{ properties: 'x' }, /properties/],
    [{ properties: [] }, /properties/],
    [{ sender: false }, /sender/],
    [{ unknown: 'x' }, /additional|unknown/],
    [[], /body/],
    ['just a string', /body/],
  ] as Array<[unknown, RegExp]>) {
    const res =
      typeof payload === 'string'
        ? await rawJson('PUT', `/api/v1/monitor/messages/${m.id}`, JSON.stringify(payload))
        : await put(payload)
    const body = assertError(t, res, 422, 'MSGSTORE_VALIDATION')
    t.match(body.detail, field, `${JSON.stringify(payload)}: names the field`)
  }
  t.same(await listAll(), before, 'no refused edit changed the message')

  for (const [payload, field] of [
    [messageInput({ flow_id, session_id: 42 as unknown as string }), /session_id/],
    [messageInput({ flow_id, session_id: 's', text: 5 }), /text/],
    [messageInput({ flow_id, session_id: 's', error: 'false' }), /error/],
    [messageInput({ flow_id, session_id: 's', files: 'f' }), /files/],
    [messageInput({ flow_id, session_id: 's', extra: 1 }), /additional|extra/],
    [{ ...messageInput({ flow_id, session_id: 's' }), text: undefined }, /text/],
  ] as Array<[unknown, RegExp]>) {
    const body = assertError(t, await raw('POST', '/internal/messages', payload), 422, 'MSGSTORE_VALIDATION')
    t.match(body.detail, field)
  }
  assertError(t, await raw('POST', '/internal/messages/batch', { messages: [] }), 422)
  assertError(t, await raw('POST', '/internal/messages/batch', [messageInput({ flow_id, session_id: 's' })]), 422)
  t.same(await listAll(), before, 'nothing stored')

  // JSON sent as text/plain is a string, never parsed into an edit.
  const plain = await app.inject({
    method: 'PUT',
    url: `/api/v1/monitor/messages/${m.id}`,
    headers: { ...internalHeaders(A), 'content-type': 'text/plain' },
    payload: '{"text":"x"}',
  })
  assertError(t, plain, 422, 'MSGSTORE_VALIDATION')
  // A body of an unsupported media type: refused in the envelope, with this service's code.
  assertError(
    t,
    await app.inject({
      method: 'PUT',
      url: `/api/v1/monitor/messages/${m.id}`,
      headers: { ...internalHeaders(A), 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'text=x',
    }),
    415,
    'MSGSTORE_UNSUPPORTED_MEDIA_TYPE',
  )
  const form = await app.inject({
    method: 'DELETE',
    url: '/api/v1/monitor/messages/sessions',
    headers: { ...internalHeaders(A), 'content-type': 'application/x-www-form-urlencoded' },
    payload: 's=1',
  })
  assertError(t, form, 415, 'MSGSTORE_UNSUPPORTED_MEDIA_TYPE')
  t.same(await listAll(), before)
})

t.test('body limits: BODY_LIMIT_BYTES on the monitor API, INTERNAL_BODY_LIMIT_BYTES on writes', async (t) => {
  const small = await buildTestApp(t, { env: { BODY_LIMIT_BYTES: '4096', INTERNAL_BODY_LIMIT_BYTES: '65536' } })
  const flow_id = randomUUID()
  const [m] = (await store(small, A, [messageInput({ flow_id, session_id: 's', text: 'small' })])) as unknown as Msg[]
  if (!m) throw new Error('store failed')
  const send = (method: Method, url: string, payload: unknown) =>
    small.inject({ method, url, headers: internalHeaders(A), payload: payload as never })

  const big = assertError(
    t,
    await send('PUT', `/api/v1/monitor/messages/${m.id}`, { text: 'x'.repeat(5000) }),
    413,
    'MSGSTORE_PAYLOAD_TOO_LARGE',
  )
  t.match(big.detail, /4096/, 'the detail names the monitor limit')
  const under = await send('PUT', `/api/v1/monitor/messages/${m.id}`, { text: 'y'.repeat(3000) })
  t.equal(under.statusCode, 200, 'under the limit is fine')
  assertError(
    t,
    await send(
      'DELETE',
      '/api/v1/monitor/messages',
      Array.from({ length: 200 }, () => randomUUID()),
    ),
    413,
    'MSGSTORE_PAYLOAD_TOO_LARGE',
  )
  assertError(
    t,
    await send(
      'DELETE',
      '/api/v1/monitor/messages/sessions',
      Array.from({ length: 400 }, (_, i) => `session-${i}`),
    ),
    413,
    'MSGSTORE_PAYLOAD_TOO_LARGE',
  )

  // The internal write API takes bodies far over the monitor limit...
  const batch = Array.from({ length: 4 }, (_, i) =>
    messageInput({ flow_id, session_id: 'w', text: `${i}`.repeat(5000) }),
  )
  const ok = await send('POST', '/internal/messages/batch', { messages: batch })
  t.equal(ok.statusCode, 201, '20 kB is over the monitor limit but under the internal one')
  const one = await send(
    'POST',
    '/internal/messages',
    messageInput({ flow_id, session_id: 'w', text: 'z'.repeat(10_000) }),
  )
  t.equal(one.statusCode, 201)
  // ...up to its own limit.
  const tooBig = Array.from({ length: 8 }, () => messageInput({ flow_id, session_id: 'w', text: 'q'.repeat(10_000) }))
  const over = assertError(t, await send('POST', '/internal/messages/batch', { messages: tooBig }), 413)
  t.match(over.detail, /65536/, 'the detail names the internal limit')
  const listed = await small.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages?session_id=w',
    headers: internalHeaders(A),
  })
  t.equal(listed.json().length, 5, 'the refused batch stored nothing')

  // Defaults: 1 MiB on the monitor API, more on the internal one.
  const [d] = (await store(app, A, [messageInput({ flow_id, session_id: 'd' })])) as unknown as Msg[]
  const huge = await raw('PUT', `/api/v1/monitor/messages/${d?.id}`, { text: 'h'.repeat(1024 * 1024) })
  const detail = assertError(t, huge, 413, 'MSGSTORE_PAYLOAD_TOO_LARGE')
  t.match(detail.detail, /1048576/)
  const twoMiB = Array.from({ length: 3 }, () => messageInput({ flow_id, session_id: 'd', text: 'i'.repeat(700_000) }))
  t.equal((await raw('POST', '/internal/messages/batch', { messages: twoMiB })).statusCode, 201, '2 MiB batch stored')
})

t.test('auth: a missing or wrong internal token is 401; a missing tenant is 400', async (t) => {
  const flow_id = randomUUID()
  await store(app, A, [messageInput({ flow_id, session_id: 's' })])
  const routes: Array<[Method, string, unknown?]> = [
    ['GET', '/api/v1/monitor/messages'],
    ['GET', '/api/v1/monitor/sessions'],
    ['GET', '/api/v1/monitor/messages/sessions'],
    ['PUT', `/api/v1/monitor/messages/${randomUUID()}`, { text: 'x' }],
    ['DELETE', '/api/v1/monitor/messages', [randomUUID()]],
    ['PATCH', '/api/v1/monitor/messages/session/s?new_session_id=t'],
    ['DELETE', '/api/v1/monitor/messages/session/s'],
    ['DELETE', '/api/v1/monitor/messages/sessions', ['s']],
    ['POST', '/internal/messages', messageInput({ flow_id, session_id: 's' })],
    ['GET', `/internal/history?flow_id=${flow_id}&session_id=s`],
    ['DELETE', `/internal/flows/${flow_id}/messages`],
  ]
  const token = 'x-internal-token'
  const tenant = 'x-tenant-id'
  for (const [method, url, payload] of routes) {
    const name = `${method} ${url}`
    const noToken = await raw(method, url, payload, { [tenant]: A })
    assertError(t, noToken, 401, 'MSGSTORE_UNAUTHORIZED')
    const wrong = await raw(method, url, payload, { [token]: `${INTERNAL_TOKEN.slice(0, -1)}X`, [tenant]: A })
    assertError(t, wrong, 401, 'MSGSTORE_UNAUTHORIZED')
    const short = await raw(method, url, payload, { [token]: 'x', [tenant]: A })
    assertError(t, short, 401, 'MSGSTORE_UNAUTHORIZED')
    const noTenant = await raw(method, url, payload, { [token]: INTERNAL_TOKEN })
    const body = assertError(t, noTenant, 400, 'MSGSTORE_MISSING_TENANT')
    t.match(body.detail, /x-tenant-id/, `${name}: names the header`)
    assertError(t, await raw(method, url, payload, { [token]: INTERNAL_TOKEN, [tenant]: '' }), 400)
  }
  t.equal((await listAll()).length, 1, 'no unauthenticated request changed anything')
})

t.test('unknown routes and methods are a 404 in the envelope', async (t) => {
  for (const [method, url, headers] of [
    ['GET', '/nope', internalHeaders(A)],
    ['GET', '/nope', {}],
    ['GET', '/api/v1/monitor/nothing', internalHeaders(A)],
    ['POST', '/api/v1/monitor/messages', internalHeaders(A)],
    ['PATCH', '/api/v1/monitor/messages', internalHeaders(A)],
    ['GET', '/api/v1/monitor/messages/session/x', internalHeaders(A)],
    ['GET', '/api/v2/monitor/messages', internalHeaders(A)],
  ] as Array<[Method, string, Record<string, string>]>) {
    const body = assertError(t, await raw(method, url, undefined, headers), 404, 'MSGSTORE_ROUTE_NOT_FOUND')
    t.match(body.detail, url.split('?')[0] as string)
  }
})

t.test('NUL inside a message text or its JSON fields is a 422, and nothing is stored', async (t) => {
  const flow_id = randomUUID()
  const cases: Array<[string, Record<string, unknown>]> = [
    ['text', { text: 'a\u0000b' }],
    ['properties', { properties: { note: 'a\u0000b' } }],
    ['content_blocks', { content_blocks: [{ text: '\u0000' }] }],
  ]
  for (const [name, fields] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/internal/messages',
      headers: internalHeaders(),
      payload: messageInput({ flow_id, session_id: 'nul', ...fields }),
    })
    t.equal(res.statusCode, 422, `${name}: 422`)
    t.equal(res.json().code, 'MSGSTORE_VALIDATION')
  }
  const listed = await app.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages',
    headers: internalHeaders(),
    query: { flow_id },
  })
  t.same(listed.json(), [], 'nothing was stored')
})
