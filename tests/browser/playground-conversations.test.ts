// The Playground's thumbs up/down on replies and "Fork from here" on a message (issue 15), in a real browser
// (Debian's Chromium driven by playwright-core) against the real stack as processes. Every wait is bounded
// (10 s per step).
import { KEY_A } from '@session-runtime/stack'
import t from 'tap'
import { apiClient, openPlayground, startBrowserStack } from '../helpers/browser.js'

interface Msg {
  id: string
  text: string
  sender: string
  session_id: string
  properties: { positive_feedback?: boolean | null }
}
interface Summary {
  session_id: string
  message_count: number
  positive_feedback_count: number
  negative_feedback_count: number
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
const messagesOf = async (sessionId: string) => {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId, limit: '1000' })
  return (await api<Msg[]>(`/api/v1/monitor/messages?${query}`)).body
}
const summaries = async () => (await api<Summary[]>(`/api/v1/monitor/sessions?flow_id=${flowId}&limit=100`)).body

const CHAT = 'fruit chat'
for (const fruit of ['apple', 'banana', 'cherry']) await run(CHAT, fruit)
const original = await messagesOf(CHAT)
if (original.length !== 6) throw new Error(`seed: ${original.length} messages`)
const [, reply1, , reply2] = original as [Msg, Msg, Msg, Msg, Msg, Msg]

const { page, pageErrors, external } = await openPlayground(browser, stack.gatewayUrl, KEY_A, 'Memory Echo')
const session = (id: string) => page.locator(`#sessions .session[data-session-id="${id}"]`)
const message = (id: string) => page.locator(`#messages .message[data-id="${id}"]`)
await session(CHAT).click()
await message(reply2.id).waitFor()

t.test(
  'thumbs up and down on replies: stored, shown pressed, counted in the session list; pressed again: removed',
  async (t) => {
    t.equal(await page.locator('#messages .message.user .feedback-button').count(), 0, 'only replies are rated')
    t.equal(await page.locator('#messages .message.machine .thumbs-up').count(), 3, 'every reply can be')

    await message(reply1.id).locator('.thumbs-up').click()
    await message(reply1.id).locator('.thumbs-up[aria-pressed="true"]').waitFor()
    t.equal(await message(reply1.id).locator('.thumbs-down').getAttribute('aria-pressed'), 'false')
    await message(reply2.id).locator('.thumbs-down').click()
    await message(reply2.id).locator('.thumbs-down[aria-pressed="true"]').waitFor()

    const stored = await messagesOf(CHAT)
    t.equal(stored.find((m) => m.id === reply1.id)?.properties.positive_feedback, true, 'stored as Langflow does')
    t.equal(stored.find((m) => m.id === reply2.id)?.properties.positive_feedback, false)
    t.same(
      stored.map((m) => m.text),
      original.map((m) => m.text),
      'the texts are unchanged',
    )
    await session(CHAT).locator('.feedback-counts', { hasText: '👍 1 · 👎 1' }).waitFor()
    t.match(await session(CHAT).locator('.feedback-counts').getAttribute('aria-label'), /1 thumbs up, 1 thumbs down/)

    // pressing the pressed one takes the feedback back
    await message(reply2.id).locator('.thumbs-down').click()
    await message(reply2.id).locator('.thumbs-down[aria-pressed="false"]').waitFor()
    t.equal((await messagesOf(CHAT)).find((m) => m.id === reply2.id)?.properties.positive_feedback, null)
    await session(CHAT).locator('.feedback-counts', { hasText: '👍 1 · 👎 0' }).waitFor()
    t.match(
      (await summaries()).find((s) => s.session_id === CHAT),
      { positive_feedback_count: 1, negative_feedback_count: 0 },
    )
  },
)

t.test(
  'fork from here: a new session with the conversation up to that message, opened; a run there continues it',
  async (t) => {
    await message(reply2.id).locator('.fork-button').click()
    // the generated id (a UUID) of the fork, opened
    await page.locator('#conversation-title', { hasText: /^[0-9a-f]{8}-[0-9a-f]{4}-/ }).waitFor()
    const forkId = (await page.locator('#conversation-title').textContent()) ?? ''
    await page.locator('#messages .message').nth(3).waitFor()
    await page.locator('#messages .message').nth(4).waitFor({ state: 'detached' })
    t.same(
      await page.locator('#messages .message .text').allTextContents(),
      original.slice(0, 4).map((m) => m.text),
      'the conversation up to and including the message',
    )
    await session(forkId).waitFor()
    t.equal(await session(forkId).getAttribute('aria-current'), 'true', 'listed and open')
    t.match(await session(forkId).locator('.meta').textContent(), /^4 messages/)
    const copies = await messagesOf(forkId)
    t.same(
      copies.map((m) => m.text),
      original.slice(0, 4).map((m) => m.text),
    )
    t.notOk(
      copies.some((c) => original.some((o) => o.id === c.id)),
      'copies have their own ids',
    )

    // a turn in the fork: Memory Echo's reply is built from the fork's history, which ends at banana
    await page.fill('#message-input', 'date')
    await page.press('#message-input', 'Enter')
    await page.locator('#messages .message').nth(5).waitFor()
    await page.locator('#send:not([disabled])').waitFor()
    const after = await messagesOf(forkId)
    t.equal(after.length, 6)
    const reply = after.at(-1)?.text ?? ''
    t.match(reply, /banana/, `the reply sees the copied history: ${reply}`)
    t.notMatch(reply, /cherry/, 'and nothing after the fork point')
    t.same(
      (await messagesOf(CHAT)).map((m) => m.id),
      original.map((m) => m.id),
      'the original session is untouched',
    )
  },
)

t.test('the page loaded nothing from elsewhere and raised no errors', async (t) => {
  t.same(external, [], 'no request left the gateway')
  t.same(pageErrors, [], 'no page errors')
})
