// The Playground's session-lifecycle features in a real browser (Debian's Chromium driven by playwright-core)
// against the real stack as processes: metadata shown, filtered by and edited; a search that opens the
// session at the hit (several pages back); a session exported as a download; the flow's retention shown and
// set. Every wait is bounded (10 s per step).
import { readFile } from 'node:fs/promises'
import { KEY_A } from '@session-runtime/stack'
import t from 'tap'
import { apiClient, openPlayground, startBrowserStack } from '../helpers/browser.js'

interface Msg {
  id: string
  text: string
  session_id: string
}
interface Summary {
  session_id: string
  metadata: Record<string, string>
}

const { stack, browser } = await startBrowserStack(t)
const api = apiClient(stack.gatewayUrl)

const flows = await api<{ id: string; endpoint_name: string }[]>('/api/v1/flows/')
const flowId = flows.body.find((flow) => flow.endpoint_name === 'memory-echo')?.id as string
// (no assertion before the last top-level await: tap ends the root test once it has one and nothing is queued)
if (!flowId) throw new Error(`no Memory Echo flow: ${JSON.stringify(flows.body)}`)

const run = async (session_id: string, input_value: string) => {
  const res = await api(`/api/v1/run/${flowId}`, { method: 'POST', body: JSON.stringify({ input_value, session_id }) })
  if (res.status !== 200) throw new Error(`run: ${res.status} ${JSON.stringify(res.body)}`)
}
const setMetadata = async (sessionId: string, metadata: Record<string, string | null>) => {
  const res = await api<Summary>(`/api/v1/monitor/sessions/${encodeURIComponent(sessionId)}?flow_id=${flowId}`, {
    method: 'PATCH',
    body: JSON.stringify({ metadata }),
  })
  if (res.status !== 200) throw new Error(`metadata: ${res.status} ${JSON.stringify(res.body)}`)
}
const summaries = async () => (await api<Summary[]>(`/api/v1/monitor/sessions?flow_id=${flowId}&limit=100`)).body
const messagesOf = async (sessionId: string) => {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId, limit: '1000' })
  return (await api<Msg[]>(`/api/v1/monitor/messages?${query}`)).body
}

// alice and bob with metadata; "long": the message to find first, then 120 turns (240 messages) after it, so
// the hit is five pages (50 messages each) back from the newest. Memory Echo's replies repeat earlier inputs:
// the message to find gets its words by an edit afterwards, so that no other message has them.
const ALICE = 'alice chat'
const BOB = 'bob chat'
const LONG = 'long history'
await run(ALICE, 'hello from alice')
await run(BOB, 'hello from bob')
await setMetadata(ALICE, { user_id: 'u-1' })
await setMetadata(BOB, { user_id: 'u-2', plan: 'pro' })
await run(LONG, 'first words')
for (let i = 0; i < 120; i++) await run(LONG, `filler ${i}`)
const first = (await messagesOf(LONG)).find((m) => m.text === 'first words')
const edited = await api(`/api/v1/monitor/messages/${first?.id}`, {
  method: 'PUT',
  body: JSON.stringify({ text: 'the quick zebra crossed' }),
})
if (edited.status !== 200) throw new Error(`edit: ${edited.status} ${JSON.stringify(edited.body)}`)

const { page, pageErrors, external } = await openPlayground(browser, stack.gatewayUrl, KEY_A, 'Memory Echo')
const session = (id: string) => page.locator(`#sessions .session[data-session-id="${id}"]`)
const sessionList = () =>
  page.locator('#sessions .session').evaluateAll((els) => els.map((e) => e.getAttribute('data-session-id') ?? ''))
/** Waits (bounded) until the list shows exactly `n` sessions. */
async function waitSessions(n: number) {
  const rows = page.locator('#sessions .session')
  if (n > 0) await rows.nth(n - 1).waitFor({ state: 'attached' })
  await rows.nth(n).waitFor({ state: 'detached' })
}
await session(LONG).waitFor()

t.test('the session list shows metadata, and filters by it', async (t) => {
  const bobTags = await session(BOB).locator('.tag').allTextContents()
  t.same(bobTags.sort(), ['plan: pro', 'user_id: u-2'])
  t.match(await session(ALICE).locator('.tags').textContent(), /user_id: u-1/)
  t.equal(await session(LONG).locator('.tags').count(), 0, 'no metadata, no tags')

  await page.fill('#filter-input', 'user_id=u-2')
  await page.press('#filter-input', 'Enter')
  await waitSessions(1)
  t.same(await sessionList(), [BOB], 'only the session with user_id u-2')

  await page.fill('#filter-input', 'user_id=u-1, plan=pro')
  await page.press('#filter-input', 'Enter')
  await page.locator('#sessions-empty').waitFor({ state: 'visible' })
  t.same(await sessionList(), [], 'every pair must match: none does')

  await page.fill('#filter-input', 'bad key=1')
  await page.press('#filter-input', 'Enter')
  await page.locator('#notice').waitFor({ state: 'visible' })
  t.match(await page.locator('#notice').textContent(), /not key=value/)

  await page.click('#filter-clear')
  await waitSessions(3)
  t.same((await sessionList()).sort(), [ALICE, BOB, LONG].sort(), 'cleared: every session again')
})

t.test('search finds a message and opens its session at the hit, pages back', async (t) => {
  await page.fill('#search-input', 'ZEBRA quick')
  await page.press('#search-input', 'Enter')
  const hit = page.locator('#hits .hit')
  await hit.first().waitFor()
  t.equal(await hit.count(), 1, 'one message has both words')
  t.equal(await hit.first().getAttribute('data-session-id'), LONG)
  t.ok(await page.locator('#sessions').isHidden(), 'the results replace the session list while shown')
  const wanted = (await messagesOf(LONG)).find((m) => m.text === 'the quick zebra crossed')
  await hit.first().click()
  const found = page.locator('#messages .message.found')
  await found.waitFor()
  t.equal(await found.getAttribute('data-id'), wanted?.id, 'the hit is the message found, marked')
  t.ok(await found.isVisible(), 'scrolled into view')
  t.equal(await page.locator('#conversation-title').textContent(), LONG)
  t.ok((await page.locator('#messages .message').count()) > 200, 'older pages were loaded to reach it')

  await page.fill('#search-input', '"zebra quick"')
  await page.press('#search-input', 'Enter')
  await page.locator('#hits-empty').waitFor({ state: 'visible' })
  t.pass('a quoted phrase matches only as a phrase: none here')

  await page.click('#search-close')
  await session(LONG).waitFor()
  t.ok(await page.locator('#search-results').isHidden(), 'closed: the session list is back')
})

t.test('metadata: edited in a dialog, a bad key refused there, stored merged', async (t) => {
  await session(ALICE).click()
  await page.locator('#conversation-title', { hasText: ALICE }).waitFor()
  await page.click('#metadata-session')
  const rows = page.locator('#metadata-rows li')
  t.equal(await rows.count(), 1)
  t.equal(await rows.first().locator('.metadata-key').inputValue(), 'user_id')
  t.equal(await rows.first().locator('.metadata-value').inputValue(), 'u-1')

  await page.click('#metadata-add')
  await rows.nth(1).locator('.metadata-key').fill('bad key')
  await rows.nth(1).locator('.metadata-value').fill('x')
  await page.click('#metadata-save')
  await page.locator('#metadata-error').waitFor({ state: 'visible' })
  t.match(await page.locator('#metadata-error').textContent(), /not a valid key/)

  await rows.nth(1).locator('.metadata-key').fill('plan')
  await rows.nth(1).locator('.metadata-value').fill('free')
  await rows.first().locator('button').click() // remove user_id
  await page.click('#metadata-save')
  await page.locator('#metadata-dialog').waitFor({ state: 'hidden' })
  await session(ALICE).locator('.tag', { hasText: 'plan: free' }).waitFor()
  t.equal(await session(ALICE).locator('.tag').count(), 1, 'the removed key is gone from the list')
  const stored = (await summaries()).find((s) => s.session_id === ALICE)
  t.same(stored?.metadata, { plan: 'free' }, 'stored: plan added, user_id removed')
})

t.test('export: the open session downloads as NDJSON, summary first, then its messages oldest first', async (t) => {
  await session(BOB).click()
  await page.locator('#conversation-title', { hasText: BOB }).waitFor()
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-session')])
  t.equal(download.suggestedFilename(), 'bob chat.ndjson')
  const path = await download.path()
  const lines = (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
  t.equal(lines[0]?.session?.session_id, BOB)
  t.same(lines[0]?.session?.metadata, { user_id: 'u-2', plan: 'pro' })
  t.same(
    lines.slice(1).map((m: Msg) => m.id),
    (await messagesOf(BOB)).map((m) => m.id),
    'every message, oldest first',
  )
})

t.test("retention: shown for the flow, set for it, then back to the tenant's default", async (t) => {
  const text = page.locator('#retention-text')
  t.match(await text.textContent(), /kept until deleted/)
  await page.click('#retention-edit')
  await page.fill('#retention-value', '30')
  await page.selectOption('#retention-unit', { label: 'days' })
  await page.click('#retention-save')
  await page.locator('#retention-text', { hasText: '30 days' }).waitFor()
  t.match(await text.textContent(), /idle for 30 days are deleted \(this flow\)/)
  const stored = await api<{ effective?: { max_idle_seconds: number | null; source: string } }>(
    `/api/v1/monitor/retention?flow_id=${flowId}`,
  )
  t.same(stored.body.effective, { flow_id: flowId, max_idle_seconds: 30 * 86400, source: 'flow' }, 'stored in seconds')

  await page.click('#retention-edit')
  await page.fill('#retention-value', '0')
  await page.click('#retention-save')
  await page.locator('#retention-error').waitFor({ state: 'visible' })
  t.match(await page.locator('#retention-error').textContent(), /at least 1/)
  await page.click('#retention-default')
  await page.locator('#retention-text', { hasText: 'kept until deleted' }).waitFor()
  t.pass("back to the tenant's default (none)")
  t.equal(await session(LONG).count(), 1, 'no session was swept')
})

t.test('the page loaded nothing from elsewhere and raised no errors', async (t) => {
  t.same(external, [])
  t.same(pageErrors, [])
})
