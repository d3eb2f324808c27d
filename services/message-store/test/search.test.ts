import { randomBytes, randomUUID } from 'node:crypto'
import { INTERNAL_TOKEN_HEADER, type Message, OPENAPI_DOCUMENT_PATH } from '@session-runtime/schemas'
import t, { type Test } from 'tap'
import {
  buildTestApp,
  cacheKind,
  INTERNAL_TOKEN,
  internalHeaders,
  messageInput,
  storageKind,
  store,
} from './helpers/app.js'

t.comment(`storage: ${storageKind}, cache: ${cacheKind}`)

// One app for the whole file (a PGlite start is slow); every test has tenants of its own.
const app = await buildTestApp(t)
let A = ''
let B = ''
t.beforeEach(() => {
  const id = randomBytes(4).toString('hex')
  A = `tenant-a-${id}`
  B = `tenant-b-${id}`
})

type Query = Record<string, string | number>

function search(tenant: string, query: Query) {
  return app.inject({
    method: 'GET',
    url: '/api/v1/monitor/messages/search',
    headers: internalHeaders(tenant),
    query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])),
  })
}

/** The texts found (one page), newest first; fails loudly on anything but a 200. */
async function found(tenant: string, q: string, query: Query = {}): Promise<string[]> {
  const res = await search(tenant, { q, limit: 1000, ...query })
  if (res.statusCode !== 200) throw new Error(`search ${JSON.stringify(q)}: ${res.statusCode} ${res.body}`)
  return (res.json() as Message[]).map((m) => m.text)
}

/** Stores texts one after another (so the later is newer) in one session; returns them as stored. */
async function storeTexts(tenant: string, texts: string[], where: { flow_id?: string; session_id?: string } = {}) {
  const flow_id = where.flow_id ?? randomUUID()
  const session_id = where.session_id ?? 's'
  const stored: Message[] = []
  for (const text of texts) {
    stored.push(...((await store(app, tenant, [messageInput({ flow_id, session_id, text })])) as unknown as Message[]))
  }
  return stored
}

const newestFirst = (texts: string[]) => [...texts].reverse()

t.test('every word must match, as a case-insensitive substring, newest first', async (t) => {
  const texts = [
    'The quick brown fox',
    'a QUICK reply',
    'brown bread',
    'Quickly, the brownish dog',
    'Ärger mit ΣΟΦΙΑ und Привет',
  ]
  await storeTexts(A, texts)
  t.same(await found(A, 'quick'), newestFirst([texts[0], texts[1], texts[3]] as string[]))
  t.same(await found(A, 'quick brown'), newestFirst([texts[0], texts[3]] as string[]), 'both words')
  t.same(await found(A, 'BROWN   quick'), newestFirst([texts[0], texts[3]] as string[]), 'any order, any spacing')
  t.same(await found(A, 'fox dog'), [], 'no text has both')
  t.same(await found(A, 'ärger σοφια ПРИВЕТ'), [texts[4]], 'non-ASCII letters fold case too')
  t.same(await found(A, 'nothing-like-this'), [])
})

t.test('CJK and other scripts: words of 1, 2 and more characters', async (t) => {
  const texts = [
    '東京都庁に行きます',
    '京都は美しい',
    '私は猫が好きです',
    '東京 and Kyoto',
    '서울특별시 날씨',
    'مرحبا بالعالم',
    'ÖK x y',
  ]
  await storeTexts(A, texts)
  t.same(await found(A, '東京'), newestFirst([texts[0], texts[3]] as string[]), 'a 2-character word')
  t.same(await found(A, '京都'), newestFirst([texts[0], texts[1]] as string[]), 'inside a longer run')
  t.same(await found(A, '猫'), [texts[2]], 'a 1-character word')
  t.same(await found(A, '東京都庁'), [texts[0]], 'a 4-character word')
  t.same(await found(A, '東京 kyoto'), [texts[3]], 'mixed scripts')
  t.same(await found(A, '서울'), [texts[4]], 'Hangul')
  t.same(await found(A, 'بالعالم'), [texts[5]], 'Arabic')
  t.same(await found(A, '大阪'), [])
  t.same(await found(A, 'öK'), [texts[6]], 'a short word folds case too')
  t.same(await found(A, 'xy'), [], 'a short word never spans whitespace')
})

t.test('a quoted phrase matches its words in order, across any whitespace', async (t) => {
  const texts = ['the quick brown fox', 'brown quick', 'quick\n\tbrown', 'quick, brown', 'The Quick Brownie']
  await storeTexts(A, texts)
  t.same(await found(A, '"quick brown"'), newestFirst([texts[0], texts[2], texts[4]] as string[]))
  t.same(await found(A, '"quick brown" fox'), [texts[0]], 'a phrase and a word')
  t.same(await found(A, '"brown quick"'), [texts[1]])
  t.same(await found(A, '"quick"'), newestFirst(texts), 'a one-word phrase is a word')
  t.same(await found(A, '"quick brown'), [], 'an unpaired quote is text: no text has `"quick`')
})

t.test('SQL, tsquery and LIKE syntax in q is literal text', async (t) => {
  const texts = [
    'plain words only',
    'cats & dogs',
    'yes | no',
    'not !important',
    'prefix:* search',
    "it's O'Brien",
    'say "hi" there',
    'back\\slash and c:\\path',
    '100% sure',
    'snake_case name',
    'a&b',
    "'); DROP TABLE messages; --",
  ]
  await storeTexts(A, texts)
  const cases: Array<[string, string[]]> = [
    ['&', [texts[1] as string, texts[10] as string]],
    ['|', [texts[2] as string]],
    ['!', [texts[3] as string]],
    ['!important', [texts[3] as string]],
    [':*', [texts[4] as string]],
    ['prefix:*', [texts[4] as string]],
    ['pre:*', []],
    ["O'Brien", [texts[5] as string]],
    ["'", [texts[5] as string, texts[11] as string]],
    ['"hi"', [texts[6] as string]], // a phrase of one word: hi
    ['"hi', [texts[6] as string]], // an unpaired quote is text
    ['hi"', [texts[6] as string]],
    ['"hi""', [texts[6] as string]], // the phrase hi, then an unpaired quote
    ['\\', [texts[7] as string]],
    ['c:\\path', [texts[7] as string]],
    ['\\s', [texts[7] as string]],
    ['%', [texts[8] as string]],
    ['100%', [texts[8] as string]],
    ['_', [texts[9] as string]],
    ['e_c', [texts[9] as string]],
    ['s_n', []], // `_` is no wildcard
    ['a&b', [texts[10] as string]],
    ['a|b', []],
    ['cats & dogs', [texts[1] as string]],
    ["'); DROP TABLE messages; --", [texts[11] as string]],
    ['%%', []],
    ['.*', []],
    ['(', []],
    ['[[:space:]]', []],
  ]
  for (const [q, expected] of cases) {
    t.same((await found(A, q)).sort(), [...expected].sort(), `q=${q}`)
  }
  t.same(await found(A, '"hi" there'), [texts[6] as string])
  t.same(await found(A, '"c:\\path"'), [texts[7] as string], 'a phrase escapes regular-expression syntax')
  t.same(await found(A, '"prefix:* search"'), [texts[4] as string])
  t.same(await found(A, '"(a|b)+ .*"'), [])
  t.equal((await found(A, 'plain')).length, 1, 'the table is still there')
})

t.test('a word found after the first 4,096 characters of a long text', async (t) => {
  const long = `${'x'.repeat(5000)} 猫 ok`
  await storeTexts(A, [long, 'short ok'])
  t.same(await found(A, '猫'), [long])
  t.same(await found(A, 'ok'), ['short ok', long])
})

t.test('flow, session and sender filters', async (t) => {
  const f1 = randomUUID()
  const f2 = randomUUID()
  await storeTexts(A, ['apple one'], { flow_id: f1, session_id: 's1' })
  await storeTexts(A, ['apple two'], { flow_id: f1, session_id: 's2' })
  await storeTexts(A, ['apple three'], { flow_id: f2, session_id: 's1' })
  await store(app, A, [messageInput({ flow_id: f2, session_id: 's1', sender: 'Machine', text: 'apple four' })])
  t.same(await found(A, 'apple'), ['apple four', 'apple three', 'apple two', 'apple one'])
  t.same(await found(A, 'apple', { flow_id: f1 }), ['apple two', 'apple one'])
  t.same(await found(A, 'apple', { session_id: 's1' }), ['apple four', 'apple three', 'apple one'])
  t.same(await found(A, 'apple', { flow_id: f2, session_id: 's1', sender: 'Machine' }), ['apple four'])
  t.same(await found(A, 'apple', { sender: 'User', flow_id: f2 }), ['apple three'])
})

t.test('keyset paging with X-Next-Cursor; each message in the monitor shape', async (t) => {
  const flow_id = randomUUID()
  // several in one batch: equal timestamps are possible, the cursor breaks ties by seq
  const batch = Array.from({ length: 7 }, (_, i) => messageInput({ flow_id, session_id: 's', text: `page item ${i}` }))
  await store(app, A, batch)
  await storeTexts(A, ['page item 7', 'unrelated'], { flow_id, session_id: 's' })
  const list = await app.inject({
    url: `/api/v1/monitor/messages?flow_id=${flow_id}&order=DESC&limit=100`,
    headers: internalHeaders(A),
  })
  const expected = (list.json() as Message[]).filter((m) => m.text.startsWith('page item'))
  t.equal(expected.length, 8)
  for (const limit of [1, 3, 8, 50]) {
    const seen: Message[] = []
    let cursor: string | undefined
    for (let pages = 0; ; pages++) {
      const res = await search(A, { q: 'PAGE item', limit, ...(cursor ? { cursor } : {}) })
      t.equal(res.statusCode, 200)
      const page = res.json() as Message[]
      const next = res.headers['x-next-cursor'] as string | undefined
      if (next !== undefined) t.equal(page.length, limit, 'a cursor only with a full page')
      if (cursor !== undefined) t.ok(page.length > 0, 'a cursor never leads to an empty page')
      seen.push(...page)
      if (next === undefined || pages > 20) break
      cursor = next
    }
    t.same(seen, expected, `limit ${limit}: every hit once, newest first, as the message list shows it`)
  }
  const first = await search(A, { q: 'page' })
  t.equal((first.json() as Message[]).length, 8, 'the default limit (50) holds them all')
  t.notOk(first.headers['x-next-cursor'])
})

t.test("another tenant's messages are never found", async (t) => {
  const flow_id = randomUUID()
  await storeTexts(A, ['secret plan alpha 東京'], { flow_id, session_id: 'shared' })
  await storeTexts(B, ['public notes'], { flow_id, session_id: 'shared' })
  for (const q of ['secret', 'plan alpha', '東京', '東', 'a']) {
    t.same(await found(B, q), [], `B searching ${q}`)
    t.same(await found(B, q, { flow_id, session_id: 'shared' }), [], `B searching ${q} in the shared IDs`)
  }
  t.same(await found(A, 'secret'), ['secret plan alpha 東京'])
  t.same(await found(A, 'notes'), [])
  // a cursor made on A's results gives B nothing of A's
  await storeTexts(A, ['secret two'], { flow_id })
  const res = await search(A, { q: 'secret', limit: 1 })
  const cursor = res.headers['x-next-cursor'] as string
  t.ok(cursor)
  t.same(await found(B, 'secret', { cursor }), [])
})

t.test('bad input is a 4xx', async (t) => {
  await storeTexts(A, ['something'])
  const expect422 = async (query: string, field: RegExp | string, code = 'MSGSTORE_VALIDATION') => {
    const res = await app.inject({ url: `/api/v1/monitor/messages/search?${query}`, headers: internalHeaders(A) })
    t.equal(res.statusCode, 422, `${query.slice(0, 60)}: 422`)
    t.equal(res.json().code, code)
    t.match(res.json().detail, field)
  }
  await expect422('', /q/)
  await expect422('q=', /q/)
  await expect422(`q=${'a'.repeat(10_000)}`, /q/)
  await expect422(`q=${'a'.repeat(501)}`, /q/)
  await expect422(`q=${'東'.repeat(501)}`, /q/)
  await expect422('q=a%00b', /q/)
  await expect422('q=%20%20%20', /no words/, 'MSGSTORE_INVALID_SEARCH')
  await expect422('q=%22%22', /no words/, 'MSGSTORE_INVALID_SEARCH')
  await expect422('q=%22%20%22', /no words/, 'MSGSTORE_INVALID_SEARCH')
  const many = Array.from({ length: 100 }, (_, i) => `w${i}`).join('+')
  await expect422(`q=${many}`, /at most/, 'MSGSTORE_INVALID_SEARCH')
  for (const limit of ['0', '-1', '1001', 'abc', '1.5', '']) await expect422(`q=x&limit=${limit}`, /limit/)
  await expect422('q=x&flow_id=not-a-uuid', /flow_id/)
  await expect422('q=x&session_id=', /session_id/)
  await expect422('q=x&cursor=', /cursor/)
  t.same(await found(A, '東'.repeat(500)), [], '500 characters are allowed')
  for (const cursor of [
    'not-base64!',
    'eyJ4IjoxfQ',
    Buffer.from('{"o":"timestamp","d":"ASC","v":null,"t":"2020-01-01T00:00:00.000000Z","s":"1"}').toString('base64url'),
    Buffer.from('{"o":"timestamp","d":"DESC","v":null,"t":"nope","s":"1"}').toString('base64url'),
  ]) {
    const res = await search(A, { q: 'something', cursor })
    t.equal(res.statusCode, 400, `cursor ${cursor.slice(0, 20)}: 400`)
    t.equal(res.json().code, 'MSGSTORE_INVALID_CURSOR')
  }
  const noAuth = await app.inject({ url: '/api/v1/monitor/messages/search?q=x' })
  t.equal(noAuth.statusCode, 401)
})

t.test('the search is in the OpenAPI document', async (t: Test) => {
  const res = await app.inject({ url: OPENAPI_DOCUMENT_PATH, headers: { [INTERNAL_TOKEN_HEADER]: INTERNAL_TOKEN } })
  const doc = res.json() as { paths: Record<string, { get?: { parameters?: Array<{ name: string }> } }> }
  const op = doc.paths['/api/v1/monitor/messages/search']?.get
  t.ok(op, 'documented')
  t.same(op?.parameters?.map((p) => p.name).sort(), ['cursor', 'flow_id', 'limit', 'q', 'sender', 'session_id'])
})
