// The Playground page in a real browser (Debian's Chromium driven by playwright-core) against the real
// stack as processes: key, flow, two sessions kept apart, a run, rename, delete, edit, and scrolling back
// through a 500-message session. Every wait is bounded (10 s per step).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { KEY_A, KEY_B, repoRoot as root, startFakeModel, startProcessStack } from '@session-runtime/stack'
import t from 'tap'
import { apiClient, launchChromium, newRecordedPage, STEP_MS } from '../helpers/browser.js'

/** What the functions run in the page use of it (this test program has no DOM library). */
interface PageElement {
  dataset: Record<string, string | undefined>
  hidden: boolean
  disabled: boolean
  textContent: string | null
  scrollTop: number
  querySelector(selector: string): PageElement | null
}
declare const document: {
  activeElement: unknown
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>
}
declare const sessionStorage: { getItem(key: string): string | null }
declare const localStorage: { length: number }

const LONG_SESSION = 'long history'
const LONG_RUNS = 250 // Memory Echo stores 2 messages per run
const CUSTOM_ID = 'odd id/50%+ok 🚀'
const RENAMED_ID = 'renamed /%+ ✨'
const TAKEN_ID = 'taken on the server'

interface Msg {
  id: string
  text: string
  sender: string
  session_id: string
  edit: boolean
}

// A model that streams its first word at once and, while held, the rest only once the test releases it (so
// the test sees tokens arrive while the run goes on).
const model = await startFakeModel(t, { reply: (call) => `Streaming reply to: ${call.user}` })
const stack = await startProcessStack(t, { modelUrl: model.url })
const base = stack.gatewayUrl

const api = apiClient(base)

const flows = await api<{ id: string; endpoint_name: string }[]>('/api/v1/flows/')
const flowId = flows.body.find((flow) => flow.endpoint_name === 'memory-echo')?.id
if (!flowId) throw new Error(`no Memory Echo flow: ${JSON.stringify(flows.body)}`)

// A flow with a streaming model (Langflow's Basic Prompting export), for tenant A.
const fixturesDir = process.env.FIXTURES_DIR ?? join(root, '../shared/fixtures')
const prompting = JSON.parse(readFileSync(join(fixturesDir, 'langflow-basic-prompting.json'), 'utf8'))
const imported = await api<{ id: string; name: string }>('/api/v1/flows/', {
  method: 'POST',
  body: JSON.stringify(prompting),
})
if (imported.status !== 201)
  throw new Error(`import Basic Prompting: ${imported.status} ${JSON.stringify(imported.body)}`)
const PROMPTING_NAME = imported.body.name
const PROMPTING_ID = imported.body.id

/** Waits, bounded by STEP_MS, until `done()` holds (checked every 10 ms). */
async function waitUntil(done: () => boolean): Promise<void> {
  const deadline = Date.now() + STEP_MS
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * A 500-message session, made with the run API while the browser starts: `long 0` alone first (so the
 * conversation surely starts with it), then the rest with bounded concurrency.
 */
async function seedLongSession(): Promise<void> {
  const runLong = async (i: number) => {
    const res = await api(`/api/v1/run/${flowId}`, {
      method: 'POST',
      body: JSON.stringify({ input_value: `long ${i}`, session_id: LONG_SESSION }),
    })
    if (res.status !== 200) throw new Error(`seed run ${i}: ${res.status} ${JSON.stringify(res.body)}`)
  }
  await runLong(0)
  let next = 1
  const worker = async () => {
    while (next < LONG_RUNS) await runLong(next++)
  }
  await Promise.all(Array.from({ length: 4 }, worker))
}

/** Every message of a session (of Memory Echo unless named), oldest first, straight from the API. */
async function allMessages(sessionId: string, flow = flowId as string): Promise<Msg[]> {
  const query = new URLSearchParams({ flow_id: flow, session_id: sessionId, limit: '1000' })
  const res = await api<Msg[]>(`/api/v1/monitor/messages?${query}`)
  return res.body
}

async function sessionIds(): Promise<string[]> {
  const res = await api<{ session_id: string }[]>(`/api/v1/monitor/sessions?flow_id=${flowId}&limit=500`)
  return res.body.map((s) => s.session_id)
}

const [browser] = await Promise.all([launchChromium(t), seedLongSession()])
// the browser itself logs the failed loads the tests cause on purpose (wrong key, taken session ID,
// network down); the page shows its own message for them
const { page, pageErrors, external } = await newRecordedPage(
  browser,
  base,
  /status of (403 \(Forbidden\)|409 \(Conflict\))|net::ERR_INTERNET_DISCONNECTED/,
)

const sessionList = () =>
  page.locator('#sessions .session').evaluateAll((els) => els.map((e) => (e as PageElement).dataset.sessionId ?? ''))
const shownTexts = () => page.locator('#messages .message .text').allTextContents()
const session = (id: string) => page.locator(`#sessions .session[data-session-id="${CSS.escape(id)}"]`)
/** Waits (bounded) until the list's first session is `id`. */
const waitTop = (id: string) =>
  page.waitForFunction(
    (want) => (document.querySelector('#sessions .session') as PageElement | null)?.dataset.sessionId === want,
    id,
    { timeout: STEP_MS },
  )
/** Waits (bounded) until the list shows `count` messages for session `id`. */
const waitCount = (id: string, count: number) =>
  page.waitForFunction(
    ([want, n]) =>
      [...document.querySelectorAll('#sessions .session')].some(
        (e) => e.dataset.sessionId === want && e.querySelector('.meta')?.textContent?.startsWith(`${n} messages`),
      ),
    [id, count] as const,
    { timeout: STEP_MS },
  )
/** Sends `text` in the open session and waits for Memory Echo's reply (user + machine message). */
async function send(text: string) {
  const before = await page.locator('#messages .message').count()
  await page.fill('#message-input', text)
  await page.press('#message-input', 'Enter')
  await page.waitForFunction((n) => document.querySelectorAll('#messages .message').length >= n + 2, before, {
    timeout: STEP_MS,
  })
  await page.waitForFunction(() => !(document.querySelector('#send') as PageElement).disabled, null, {
    timeout: STEP_MS,
  })
}

// CSS.escape, in Node (the selectors are built here)
const CSS = {
  escape: (value: string) => value.replace(/["\\]/g, '\\$&'),
}

let sessionA = ''

t.test('a wrong key: a clear message, nothing stored', async (t) => {
  const res = await page.goto(`${base}/playground`)
  t.equal(res?.status(), 200)
  t.equal(new URL(page.url()).pathname, '/playground/', 'redirected to the slash')
  await page.fill('#api-key', 'not-a-key')
  await page.click('#key-form button[type=submit]')
  await page.locator('#notice').waitFor({ state: 'visible' })
  t.match(await page.locator('#notice').textContent(), /API key was not accepted/)
  t.equal(await page.evaluate(() => sessionStorage.getItem('playground.apiKey')), null)
  t.ok(await page.locator('#flow-select').isDisabled())
})

t.test('the right key: the flows; the key lives in sessionStorage only; pick Memory Echo', async (t) => {
  await page.fill('#api-key', KEY_A)
  await page.press('#api-key', 'Enter')
  await page.waitForFunction(() => !(document.querySelector('#flow-select') as PageElement).disabled)
  t.ok(await page.locator('#notice').isHidden(), 'the earlier message is gone')
  t.equal(await page.evaluate(() => sessionStorage.getItem('playground.apiKey')), KEY_A)
  t.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage')
  t.same(await page.context().cookies(), [], 'no cookies')
  await page.selectOption('#flow-select', { label: 'Memory Echo' })
  await session(LONG_SESSION).waitFor()
  t.same(await sessionList(), [LONG_SESSION], 'the seeded session is listed')
  t.match(await session(LONG_SESSION).textContent(), /500 messages/)
})

t.test(
  'two sessions (one generated ID, one custom ID with space / % + emoji), each with its own messages',
  async (t) => {
    await page.click('#new-session')
    sessionA = (await page.locator('#conversation-title').textContent()) ?? ''
    t.match(sessionA, /^[0-9a-f-]{36}$/, 'a generated ID')
    await send('alpha one')
    await waitCount(sessionA, 2)
    await waitTop(sessionA)

    await page.fill('#new-session-id', CUSTOM_ID)
    await page.press('#new-session-id', 'Enter')
    await page.locator('#conversation-title', { hasText: CUSTOM_ID }).waitFor()
    await send('bravo one')
    await waitCount(CUSTOM_ID, 2)
    await waitTop(CUSTOM_ID)
    t.same((await sessionList()).slice(0, 3), [CUSTOM_ID, sessionA, LONG_SESSION], 'most recently active first')
    t.ok((await sessionIds()).includes(CUSTOM_ID), 'stored under exactly that ID (encoded once)')

    // by keyboard: focus the session's button, Enter; the focus stays on it when the list is redrawn
    await session(sessionA).focus()
    await page.keyboard.press('Enter')
    await page.locator('#messages .message', { hasText: 'alpha one' }).first().waitFor()
    t.equal(
      await page.evaluate(() => (document.activeElement as PageElement | null)?.dataset.sessionId),
      sessionA,
      'keyboard focus kept on the opened session',
    )
    let texts = await shownTexts()
    t.equal(texts.length, 2)
    t.notOk(
      texts.some((text) => text.includes('bravo')),
      'A shows only its own messages',
    )
    t.equal(await page.locator('#messages .message.user').count(), 1, 'one user message')
    t.equal(await page.locator('#messages .message.machine').count(), 1, 'one machine message, styled apart')

    await session(CUSTOM_ID).click()
    await page.locator('#messages .message', { hasText: 'bravo one' }).first().waitFor()
    texts = await shownTexts()
    t.equal(texts.length, 2)
    t.notOk(
      texts.some((text) => text.includes('alpha')),
      'B shows only its own messages',
    )
    t.equal(await session(CUSTOM_ID).getAttribute('aria-current'), 'true', 'the open session is marked')
  },
)

t.test('a message sent into an open session appears, and the session moves to the top', async (t) => {
  await session(sessionA).click()
  await page.locator('#messages .message', { hasText: 'alpha one' }).first().waitFor()
  await send('alpha two')
  t.ok(await page.locator('#messages .message.user', { hasText: 'alpha two' }).isVisible())
  await waitCount(sessionA, 4)
  await waitTop(sessionA)
  t.pass('A shows 4 messages in the list, at the top')
  t.same(
    (await allMessages(sessionA)).map((m) => m.text).filter((text) => text.startsWith('alpha')),
    ['alpha one', 'alpha two'],
  )
  if (process.env.PLAYGROUND_SCREENSHOT === '1') {
    await page.screenshot({ path: join(root, 'docs', 'playground.png') })
    t.pass('screenshot written to docs/playground.png')
  }
})

t.test('edit a message: new text, marked as edited', async (t) => {
  const item = page.locator('#messages .message.user', { hasText: 'alpha one' })
  await item.locator('.edit-button').click()
  await item.locator('textarea').fill('alpha one, corrected')
  await item.locator('button[type=submit]').click()
  const edited = page.locator('#messages .message.user', { hasText: 'alpha one, corrected' })
  await edited.locator('.edited').waitFor()
  t.equal(await edited.locator('.edited').textContent(), '(edited)')
  const stored = (await allMessages(sessionA)).find((m) => m.text === 'alpha one, corrected')
  t.equal(stored?.edit, true, 'stored with edit: true')
})

t.test('rename: a taken ID is refused with a message; a free one renames the session', async (t) => {
  await session(CUSTOM_ID).click()
  await page.locator('#conversation-title', { hasText: CUSTOM_ID }).waitFor()
  await page.click('#rename-session')
  await page.fill('#rename-input', sessionA)
  await page.click('#rename-confirm')
  await page.locator('#rename-error').waitFor({ state: 'visible' })
  t.match(await page.locator('#rename-error').textContent(), /already exists/)

  // a session the page has not listed yet: the server's 409 is said the same way
  const elsewhere = await api(`/api/v1/run/${flowId}`, {
    method: 'POST',
    body: JSON.stringify({ input_value: 'made elsewhere', session_id: TAKEN_ID }),
  })
  t.equal(elsewhere.status, 200)
  t.equal(await session(TAKEN_ID).count(), 0, 'not listed yet')
  await page.fill('#rename-input', TAKEN_ID)
  await page.click('#rename-confirm')
  await page.locator('#rename-error', { hasText: TAKEN_ID }).waitFor()
  t.match(await page.locator('#rename-error').textContent(), /already exists/, 'the 409, in words')

  await page.fill('#rename-input', RENAMED_ID)
  await page.press('#rename-input', 'Enter')
  await page.locator('#rename-dialog').waitFor({ state: 'hidden' })
  await page.locator('#conversation-title', { hasText: RENAMED_ID }).waitFor()
  await session(RENAMED_ID).waitFor()
  t.equal(await session(CUSTOM_ID).count(), 0, 'the old ID is gone from the list')
  const ids = await sessionIds()
  t.ok(ids.includes(RENAMED_ID) && !ids.includes(CUSTOM_ID), 'renamed in the store')
  t.same(
    (await allMessages(RENAMED_ID)).map((m) => m.text).filter((text) => text === 'bravo one'),
    ['bravo one'],
  )
})

t.test('delete: asks first (cancel keeps it), then deletes', async (t) => {
  await page.click('#delete-session')
  await page.locator('#delete-dialog').waitFor({ state: 'visible' })
  t.equal(await page.locator('#delete-name').textContent(), RENAMED_ID)
  await page.click('#delete-cancel')
  await page.locator('#delete-dialog').waitFor({ state: 'hidden' })
  t.ok((await sessionIds()).includes(RENAMED_ID), 'cancelled: still there')

  await page.click('#delete-session')
  await page.click('#delete-confirm')
  await session(RENAMED_ID).waitFor({ state: 'detached' })
  t.equal(await page.locator('#conversation-title').textContent(), 'No session open')
  t.notOk((await sessionIds()).includes(RENAMED_ID), 'deleted in the store')
  t.same(await sessionList(), [TAKEN_ID, sessionA, LONG_SESSION])
  t.ok(await page.locator('#more-sessions').isHidden(), 'no more sessions to load')
})

t.test('500 messages: newest page first, older pages on scroll-up, no duplicates, no gaps', async (t) => {
  const expected = (await allMessages(LONG_SESSION)).map((m) => m.id)
  t.equal(expected.length, 500)
  await session(LONG_SESSION).click()
  await page.waitForFunction(() => document.querySelectorAll('#messages .message').length >= 50)
  const firstIds = await page
    .locator('#messages .message')
    .evaluateAll((els) => els.map((e) => (e as PageElement).dataset.id ?? ''))
  t.same(firstIds.slice(-50), expected.slice(-50), 'the newest page, in order, at the bottom')
  t.ok(await page.locator('#history-start').isHidden(), 'more history above')

  const scroll = page.locator('#messages-scroll')
  for (let round = 0; round < 30; round++) {
    if (await page.locator('#history-start').isVisible()) break
    const count = await page.locator('#messages .message').count()
    await scroll.evaluate((el) => {
      el.scrollTop = 0
    })
    await page.waitForFunction(
      (n) =>
        document.querySelectorAll('#messages .message').length > n ||
        !(document.querySelector('#history-start') as PageElement).hidden,
      count,
      { timeout: STEP_MS },
    )
  }
  t.ok(await page.locator('#history-start').isVisible(), 'the start of the conversation is reached')
  t.ok(await page.locator('#older-messages').isHidden(), 'nothing older to load')
  const ids = await page
    .locator('#messages .message')
    .evaluateAll((els) => els.map((e) => (e as PageElement).dataset.id ?? ''))
  t.equal(new Set(ids).size, 500, '500 distinct messages')
  t.equal(ids.length, 500, 'no duplicates')
  t.same(ids, expected, 'oldest to newest, no gaps')
  t.equal(await page.locator('#messages .message .text').first().textContent(), 'long 0')
})

t.test('a streaming model: tokens show as they arrive, then the stored reply; the session moves up', async (t) => {
  await page.selectOption('#flow-select', { label: PROMPTING_NAME })
  await page.locator('#sessions-empty').waitFor({ state: 'visible' })
  await page.fill('#new-session-id', 'streamed')
  await page.click('#new-session')
  await page.locator('#conversation-title', { hasText: 'streamed' }).waitFor()
  model.hold()
  await page.fill('#message-input', 'tell me')
  await page.press('#message-input', 'Enter')
  const partial = page.locator('#messages .message.machine .text.streaming')
  await partial.waitFor()
  t.equal(await partial.textContent(), 'Streaming ', 'the first token, while the model still holds the rest')
  t.ok(await page.locator('#send').isDisabled(), 'no second send while running')
  model.release()
  const reply = page.locator('#messages .message.machine', { hasText: 'Streaming reply to: tell me' })
  await reply.waitFor()
  await page.locator('#messages .text.streaming').waitFor({ state: 'detached' })
  t.equal(await page.locator('#messages .message').count(), 2, 'the user message and one reply: no leftovers')
  await waitCount('streamed', 2)
  t.equal(await reply.locator('.edit-button').count(), 1, 'the stored reply (editable), not the streamed bubble')
})

t.test("token usage: a reply shows the model's tokens, the session list their sum", async (t) => {
  const stored = await allMessages('streamed', PROMPTING_ID)
  const reply = stored.find((m) => m.sender === 'Machine') as Msg & { properties: { usage?: { total_tokens: number } } }
  const total = reply.properties.usage?.total_tokens ?? 0
  t.ok(total > 0, 'the stored reply carries the usage the model reported')
  const shown = page.locator(`#messages .message[data-id="${reply.id}"] .usage`)
  t.equal(await shown.textContent(), `${total} tokens`, "the reply's tokens")
  t.equal(
    await page.locator('#messages .message.user .usage').count(),
    0,
    'no usage on the user message (no model ran for it)',
  )
  await page.locator(`#sessions .session[data-session-id="streamed"] .usage`, { hasText: `${total} tokens` }).waitFor()
  t.pass("the session's sum in the list")
})

t.test('a failed run: a clear message, the stored error marked, the text kept to retry', async (t) => {
  model.mode = 'fail'
  await page.fill('#message-input', 'this will fail')
  await page.press('#message-input', 'Enter')
  await page.locator('#notice', { hasText: 'The run failed' }).waitFor()
  t.match(await page.locator('#notice').textContent(), /^The run failed: /)
  await page.locator('#messages .message.error .badge').waitFor()
  t.equal(await page.locator('#messages .message.error .badge').first().textContent(), 'Error')
  t.equal(await page.inputValue('#message-input'), 'this will fail', 'the message is kept to send again')
  model.mode = 'ok'
})

t.test('a run refused because another is in flight on the session: said in words, nothing stored', async (t) => {
  // Another client's run on the open session, held by the model: the session is taken until it ends.
  model.hold()
  const calls = model.calls.length
  const elsewhere = api<{ session_id: string }>(`/api/v1/run/${PROMPTING_ID}`, {
    method: 'POST',
    body: JSON.stringify({ input_value: 'from another client', session_id: 'streamed' }),
  })
  await waitUntil(() => model.calls.length > calls)
  await page.fill('#message-input', 'while it runs')
  await page.press('#message-input', 'Enter')
  await page.locator('#notice', { hasText: 'Another run is still going on in this session' }).waitFor()
  t.equal(await page.inputValue('#message-input'), 'while it runs', 'the message is kept to send again')
  t.notOk(await page.locator('#send').isDisabled(), 'the page is not left running')
  model.release()
  t.equal((await elsewhere).status, 200, "the other client's run ends")
  const texts = (await allMessages('streamed', PROMPTING_ID)).map((m) => m.text)
  t.ok(texts.includes('from another client'), "the other client's run is stored")
  t.notOk(texts.includes('while it runs'), 'the refused message is not stored')
  await page.press('#message-input', 'Enter')
  await page.locator('#messages .message.machine', { hasText: 'Streaming reply to: while it runs' }).waitFor()
  t.pass('sent again once the other run ended, it runs')
})

t.test('the session list pages as it scrolls: 40 sessions, 30 at a time, none twice', async (t) => {
  // a flow of its own (the Simple API Test export needs no model), with 40 sessions
  const simple = JSON.parse(readFileSync(join(fixturesDir, 'langflow-simple-api-test.json'), 'utf8'))
  const created = await api<{ id: string; name: string }>('/api/v1/flows/', {
    method: 'POST',
    body: JSON.stringify({ ...simple, name: 'Paging test' }),
  })
  t.equal(created.status, 201)
  const ids = Array.from({ length: 40 }, (_, i) => `page ${String(i).padStart(2, '0')}`)
  for (let i = 0; i < ids.length; i += 4) {
    await Promise.all(
      ids.slice(i, i + 4).map(async (id) => {
        const res = await api(`/api/v1/run/${created.body.id}`, {
          method: 'POST',
          body: JSON.stringify({ input_value: 'x', session_id: id }),
        })
        if (res.status !== 200) throw new Error(`run in ${id}: ${res.status}`)
      }),
    )
  }
  await page.reload() // the flow list is read when the key is given; the key is still in sessionStorage
  await page.waitForFunction(() => !(document.querySelector('#flow-select') as PageElement).disabled)
  await page.selectOption('#flow-select', { label: 'Paging test' })
  await page.waitForFunction(() => document.querySelectorAll('#sessions .session').length > 0)
  t.equal((await sessionList()).length, 30, 'the first page only')
  await page.locator('#sessions-scroll').evaluate((box) => {
    const el = box as unknown as { scrollTop: number; scrollHeight: number }
    el.scrollTop = el.scrollHeight
  })
  await page.waitForFunction(() => document.querySelectorAll('#sessions .session').length === 40, null, {
    timeout: STEP_MS,
  })
  const listed = await sessionList()
  t.equal(listed.length, 40)
  t.same([...listed].sort(), ids, 'every session once')
  const fromApi = await api<{ session_id: string }[]>(`/api/v1/monitor/sessions?flow_id=${created.body.id}&limit=500`)
  t.same(
    listed,
    fromApi.body.map((row) => row.session_id),
    'in the order of the API: most recently active first',
  )
  await page.selectOption('#flow-select', { label: 'Memory Echo' })
  await session(LONG_SESSION).waitFor()
})

t.test('switching flows before a session list has arrived: the flow picked last lists its sessions', async (t) => {
  // hold every session-list answer until both switches are made, so the first flow's load is still out
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  await page.route('**/api/v1/monitor/sessions?*', async (route) => {
    await held
    await route.continue()
  })
  await page.selectOption('#flow-select', { label: PROMPTING_NAME })
  await page.selectOption('#flow-select', { label: 'Memory Echo' })
  release()
  await session(LONG_SESSION).waitFor()
  await page.unroute('**/api/v1/monitor/sessions?*')
  t.ok((await sessionList()).includes(LONG_SESSION), "Memory Echo's sessions are listed")
  t.notOk((await sessionList()).includes('streamed'), "none of the other flow's")
})

t.test("a conversation through OpenAI's Responses endpoint is one session in the Playground", async (t) => {
  const first = await api<{ id: string }>('/api/v1/responses', {
    method: 'POST',
    body: JSON.stringify({ model: 'memory-echo', input: 'responses one' }),
  })
  t.equal(first.status, 200)
  const second = await api<{ id: string }>('/api/v1/responses', {
    method: 'POST',
    body: JSON.stringify({ model: 'memory-echo', input: 'responses two', previous_response_id: first.body.id }),
  })
  t.equal(second.body.id, first.body.id, 'the response id is the session')
  // the session list is read when a flow is picked
  await page.selectOption('#flow-select', { label: PROMPTING_NAME })
  await page.selectOption('#flow-select', { label: 'Memory Echo' })
  await session(first.body.id).click()
  await page.locator('#messages .message.user', { hasText: 'responses two' }).waitFor()
  const texts = await shownTexts()
  t.same(
    texts.filter((text) => text === 'responses one' || text === 'responses two'),
    ['responses one', 'responses two'],
    'both turns, in order, in the one session',
  )
  t.equal(texts.length, 4, 'two questions and their two replies')
})

t.test('a network failure: said in words', async (t) => {
  await page.route('**/api/v1/monitor/**', (route) => route.abort('internetdisconnected'))
  await page.selectOption('#flow-select', { label: 'Memory Echo' })
  await page.locator('#notice', { hasText: 'Could not reach the server' }).waitFor()
  t.pass('network failure explained')
  await page.unroute('**/api/v1/monitor/**')
})

t.test('a tenant without flows is told so', async (t) => {
  const flowsB = await api<{ id: string }[]>('/api/v1/flows/', {}, KEY_B)
  for (const flow of flowsB.body) {
    t.equal((await api(`/api/v1/flows/${flow.id}`, { method: 'DELETE' }, KEY_B)).status, 204)
  }
  await page.click('#forget-key')
  t.equal(await page.evaluate(() => sessionStorage.getItem('playground.apiKey')), null, 'the key is forgotten')
  await page.fill('#api-key', KEY_B)
  await page.press('#api-key', 'Enter')
  await page.locator('#notice', { hasText: 'no flows yet' }).waitFor()
  t.ok(await page.locator('#flow-select').isDisabled())
})

t.test('the page loaded nothing from elsewhere and raised no errors', async (t) => {
  t.same(external, [], 'no request left the gateway')
  t.same(pageErrors, [], 'no page errors')
})
