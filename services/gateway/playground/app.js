// The Playground: a flow's sessions on the left, the open session's conversation on the right.
// Plain DOM, no framework; every server call goes through api.js.
import { ApiError, createApi } from './api.js'

const KEY_STORAGE = 'playground.apiKey'
const FLOW_STORAGE = 'playground.flowId'
const SESSIONS_PAGE = 30
const MESSAGES_PAGE = 50
const HITS_PAGE = 20
/** Pages of older messages loaded, at most, to reach a search hit in its session. */
const MAX_PAGES_TO_HIT = 40
/** A metadata key as the API takes it. */
const METADATA_KEY = /^[A-Za-z0-9_.-]{1,64}$/
const METADATA_MAX_KEYS = 16
/** How close (px) to the top or bottom of a list counts as "reached it" while scrolling. */
const NEAR_EDGE = 200

/** @typedef {import('./api.js').Session & { pending?: boolean }} SessionRow */
/** @typedef {import('./api.js').Message} Message */

/** @template {HTMLElement} T @param {string} id @returns {T} */
function byId(id) {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} is missing from the page`)
  return /** @type {T} */ (el)
}

const el = {
  keyForm: byId('key-form'),
  key: /** @type {HTMLInputElement} */ (byId('api-key')),
  forgetKey: /** @type {HTMLButtonElement} */ (byId('forget-key')),
  flow: /** @type {HTMLSelectElement} */ (byId('flow-select')),
  notice: byId('notice'),
  status: byId('status'),
  newForm: byId('new-session-form'),
  newId: /** @type {HTMLInputElement} */ (byId('new-session-id')),
  newButton: /** @type {HTMLButtonElement} */ (byId('new-session')),
  sessionsScroll: byId('sessions-scroll'),
  sessions: byId('sessions'),
  sessionsEmpty: byId('sessions-empty'),
  moreSessions: /** @type {HTMLButtonElement} */ (byId('more-sessions')),
  title: byId('conversation-title'),
  rename: /** @type {HTMLButtonElement} */ (byId('rename-session')),
  remove: /** @type {HTMLButtonElement} */ (byId('delete-session')),
  messagesScroll: byId('messages-scroll'),
  older: /** @type {HTMLButtonElement} */ (byId('older-messages')),
  historyStart: byId('history-start'),
  messages: byId('messages'),
  conversationEmpty: byId('conversation-empty'),
  composer: byId('composer'),
  input: /** @type {HTMLTextAreaElement} */ (byId('message-input')),
  send: /** @type {HTMLButtonElement} */ (byId('send')),
  renameDialog: /** @type {HTMLDialogElement} */ (byId('rename-dialog')),
  renameForm: byId('rename-form'),
  renameInput: /** @type {HTMLInputElement} */ (byId('rename-input')),
  renameError: byId('rename-error'),
  renameCancel: byId('rename-cancel'),
  deleteDialog: /** @type {HTMLDialogElement} */ (byId('delete-dialog')),
  deleteForm: byId('delete-form'),
  deleteName: byId('delete-name'),
  deleteCancel: byId('delete-cancel'),
  retentionText: byId('retention-text'),
  retentionEdit: /** @type {HTMLButtonElement} */ (byId('retention-edit')),
  searchForm: byId('search-form'),
  searchInput: /** @type {HTMLInputElement} */ (byId('search-input')),
  searchButton: /** @type {HTMLButtonElement} */ (byId('search-button')),
  searchResults: byId('search-results'),
  searchClose: byId('search-close'),
  hits: byId('hits'),
  hitsEmpty: byId('hits-empty'),
  moreHits: /** @type {HTMLButtonElement} */ (byId('more-hits')),
  filterForm: byId('filter-form'),
  filterInput: /** @type {HTMLInputElement} */ (byId('filter-input')),
  filterApply: /** @type {HTMLButtonElement} */ (byId('filter-apply')),
  filterClear: /** @type {HTMLButtonElement} */ (byId('filter-clear')),
  metadataButton: /** @type {HTMLButtonElement} */ (byId('metadata-session')),
  exportButton: /** @type {HTMLButtonElement} */ (byId('export-session')),
  metadataDialog: /** @type {HTMLDialogElement} */ (byId('metadata-dialog')),
  metadataForm: byId('metadata-form'),
  metadataRows: byId('metadata-rows'),
  metadataAdd: /** @type {HTMLButtonElement} */ (byId('metadata-add')),
  metadataError: byId('metadata-error'),
  metadataCancel: byId('metadata-cancel'),
  retentionDialog: /** @type {HTMLDialogElement} */ (byId('retention-dialog')),
  retentionForm: byId('retention-form'),
  retentionCurrent: byId('retention-current'),
  retentionValue: /** @type {HTMLInputElement} */ (byId('retention-value')),
  retentionUnit: /** @type {HTMLSelectElement} */ (byId('retention-unit')),
  retentionError: byId('retention-error'),
  retentionDefault: byId('retention-default'),
  retentionCancel: byId('retention-cancel'),
}

const state = {
  /** @type {ReturnType<typeof createApi> | null} */
  api: null,
  flowId: '',
  /** How many flows the key's tenant has (none: nothing to choose). */
  flowCount: 0,
  /** @type {SessionRow[]} */
  sessions: [],
  /** @type {string | null} */
  sessionsNext: null,
  sessionsLoading: false,
  /** Bumped when the flow changes: answers for an earlier flow are dropped. */
  flowGen: 0,
  /** @type {string | null} */
  open: null,
  /** Bumped when another session opens: answers for an earlier one are dropped. */
  openGen: 0,
  /** @type {Set<string>} */
  shown: new Set(),
  /** @type {string | null} */
  olderCursor: null,
  olderLoading: false,
  running: false,
  /** The metadata filter of the session list (every pair must match). @type {Record<string, string>} */
  filter: {},
  /** The search shown, if any. @type {{ q: string, next: string | null, loading: boolean, gen: number } | null} */
  search: null,
  searchGen: 0,
  /** @type {import('./api.js').Retention | null} */
  retention: null,
}

// ---------------------------------------------------------------------------------------------------------
// Feedback

/** @param {string} text @param {'error' | 'info'} [kind] */
function showNotice(text, kind = 'error') {
  el.notice.textContent = text
  el.notice.classList.toggle('info', kind === 'info')
  el.notice.hidden = false
}

function clearNotice() {
  el.notice.hidden = true
  el.notice.textContent = ''
}

/** Focuses the first match of `selector` inside `root`, if any. @param {ParentNode} root @param {string} selector */
function focusIn(root, selector) {
  const target = root.querySelector(selector)
  if (target instanceof HTMLElement) target.focus()
}

/** @param {string} text */
function announce(text) {
  el.status.textContent = text
}

/** @param {unknown} error */
function messageOf(error) {
  if (error instanceof ApiError) return error.message
  return `Something went wrong: ${/** @type {Error} */ (error)?.message ?? String(error)}`
}

/** A failure of any call: a refused key sends the person back to the key field. @param {unknown} error */
function report(error) {
  if (/** @type {Error} */ (error)?.name === 'AbortError') return
  showNotice(messageOf(error))
  if (error instanceof ApiError && error.kind === 'auth') {
    sessionStorage.removeItem(KEY_STORAGE)
    state.api = null
    setFlowControls(false)
    el.forgetKey.hidden = true
    el.key.focus()
  }
}

/** @param {string | null | undefined} iso */
function when(iso) {
  if (!iso) return ''
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString()
}

// ---------------------------------------------------------------------------------------------------------
// Key and flow

/** @param {boolean} enabled */
function setFlowControls(enabled) {
  el.flow.disabled = !enabled || state.flowCount === 0
  el.newId.disabled = !enabled || !state.flowId
  el.newButton.disabled = !enabled || !state.flowId
  for (const control of [el.searchInput, el.searchButton, el.filterInput, el.filterApply, el.retentionEdit]) {
    control.disabled = !enabled || !state.flowId
  }
}

/** @param {string} key */
async function useKey(key) {
  const api = createApi(key)
  clearNotice()
  announce('Checking the key…')
  let flows
  try {
    flows = await api.listFlows()
  } catch (error) {
    report(error)
    announce('')
    return
  }
  sessionStorage.setItem(KEY_STORAGE, key)
  state.api = api
  el.key.value = ''
  el.key.placeholder = 'key in use (this tab only)'
  el.forgetKey.hidden = false
  el.flow.replaceChildren()
  state.flowCount = flows.length
  if (flows.length === 0) {
    el.flow.append(new Option('No flows', ''))
    setFlowControls(false)
    selectFlow('')
    showNotice(
      'This key’s tenant has no flows yet. Create one through the API (POST /api/v1/flows/), then reload.',
      'info',
    )
    return
  }
  el.flow.append(new Option('Choose a flow…', ''))
  for (const flow of flows) {
    const option = new Option(flow.name, flow.id)
    option.title = flow.endpoint_name ? `endpoint: ${flow.endpoint_name}` : flow.id
    el.flow.append(option)
  }
  const remembered = sessionStorage.getItem(FLOW_STORAGE)
  const initial = flows.some((flow) => flow.id === remembered) ? (remembered ?? '') : ''
  el.flow.value = initial
  setFlowControls(true)
  announce(`${flows.length} flow${flows.length === 1 ? '' : 's'} found`)
  selectFlow(initial)
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE)
  sessionStorage.removeItem(FLOW_STORAGE)
  state.api = null
  state.flowCount = 0
  el.forgetKey.hidden = true
  el.key.placeholder = ''
  el.flow.replaceChildren(new Option('Enter an API key first', ''))
  selectFlow('')
  setFlowControls(false)
  el.key.focus()
}

/** @param {string} flowId */
function selectFlow(flowId) {
  state.flowId = flowId
  state.flowGen++
  if (flowId) sessionStorage.setItem(FLOW_STORAGE, flowId)
  state.sessions = []
  state.sessionsNext = null
  // a load of the flow before is still out: its answer is dropped (flowGen), and it must not hold this flow's
  // first load back (it would leave the list empty for good)
  state.sessionsLoading = false
  state.filter = {}
  el.filterInput.value = ''
  el.filterClear.hidden = true
  closeSearch()
  closeSession()
  renderSessions()
  setFlowControls(Boolean(state.api))
  void loadRetention()
  if (flowId) void loadSessions()
}

// ---------------------------------------------------------------------------------------------------------
// Sessions (left)

/** The next page of sessions (or the first, if none is loaded). */
async function loadSessions() {
  const api = state.api
  if (!api || !state.flowId || state.sessionsLoading) return
  const first = state.sessions.every((s) => s.pending)
  if (!first && !state.sessionsNext) return
  const gen = state.flowGen
  state.sessionsLoading = true
  try {
    const page = await api.listSessions(state.flowId, {
      limit: SESSIONS_PAGE,
      cursor: first ? null : state.sessionsNext,
      metadata: state.filter,
    })
    if (gen !== state.flowGen) return
    const known = new Set(state.sessions.map((s) => s.session_id))
    for (const row of /** @type {SessionRow[]} */ (page.items)) {
      if (!known.has(row.session_id)) state.sessions.push(row)
    }
    state.sessionsNext = page.next
    renderSessions()
  } catch (error) {
    if (gen === state.flowGen) report(error)
  } finally {
    if (gen === state.flowGen) {
      state.sessionsLoading = false
      // the list is empty only now that the load is over: "no sessions" shows (or hides) from here
      renderSessions()
    }
  }
  if (gen === state.flowGen) maybeLoadMoreSessions()
}

/** After a change: the first page again, merged in front of what was loaded (the list keeps its pages). */
async function refreshSessions() {
  const api = state.api
  if (!api || !state.flowId) return
  const gen = state.flowGen
  try {
    const page = await api.listSessions(state.flowId, { limit: SESSIONS_PAGE, metadata: state.filter })
    if (gen !== state.flowGen) return
    const fresh = /** @type {SessionRow[]} */ (page.items)
    const ids = new Set(fresh.map((s) => s.session_id))
    const pending = state.sessions.filter((s) => s.pending && !ids.has(s.session_id))
    const rest = state.sessions.filter((s) => !s.pending && !ids.has(s.session_id))
    // A refreshed first page that is the whole list has the last word: what it lacks is gone.
    state.sessions = [...pending, ...fresh, ...(page.next || state.sessionsNext ? rest : [])]
    if (!state.sessionsNext || !page.next) state.sessionsNext = page.next
    renderSessions()
    setConversationControls()
  } catch (error) {
    if (gen === state.flowGen) report(error)
  }
}

function maybeLoadMoreSessions() {
  const box = el.sessionsScroll
  if (state.sessionsNext && box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_EDGE) void loadSessions()
}

/** @param {SessionRow} row */
function sessionItem(row) {
  const li = document.createElement('li')
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'session'
  button.dataset.sessionId = row.session_id
  button.setAttribute('aria-current', String(row.session_id === state.open))
  const sid = document.createElement('span')
  sid.className = 'sid'
  sid.textContent = row.session_id
  const meta = document.createElement('span')
  meta.className = 'meta'
  if (row.pending) {
    meta.textContent = 'new · no messages yet'
  } else {
    const count = `${row.message_count} message${row.message_count === 1 ? '' : 's'}`
    const time = document.createElement('time')
    time.dateTime = row.last_timestamp
    time.textContent = when(row.last_timestamp)
    meta.append(`${count} · `, time)
    const up = row.positive_feedback_count ?? 0
    const down = row.negative_feedback_count ?? 0
    if (up > 0 || down > 0) {
      const feedback = document.createElement('span')
      feedback.className = 'feedback-counts'
      feedback.setAttribute('aria-label', `${up} thumbs up, ${down} thumbs down`)
      feedback.textContent = ` · 👍 ${up} · 👎 ${down}`
      meta.append(feedback)
    }
    const tokens = row.usage?.total_tokens ?? 0
    if (tokens > 0) {
      const usage = document.createElement('span')
      usage.className = 'usage'
      usage.title = `${row.usage?.input_tokens ?? 0} in, ${row.usage?.output_tokens ?? 0} out`
      usage.textContent = ` · ${tokenCount(tokens)}`
      meta.append(usage)
    }
  }
  const preview = document.createElement('span')
  preview.className = 'preview'
  preview.textContent = row.last_text ?? ''
  button.append(sid, meta, preview)
  const pairs = Object.entries(row.metadata ?? {})
  if (pairs.length > 0) {
    const tags = document.createElement('span')
    tags.className = 'tags'
    tags.setAttribute('aria-label', 'Metadata')
    for (const [key, value] of pairs) {
      const tag = document.createElement('span')
      tag.className = 'tag'
      tag.dataset.key = key
      tag.textContent = `${key}: ${value}`
      tags.append(tag)
    }
    button.append(tags)
  }
  button.addEventListener('click', () => openSession(row.session_id))
  li.append(button)
  return li
}

function renderSessions() {
  // the list is rebuilt: keyboard focus stays on the same session's button
  const active = document.activeElement
  const focused = active instanceof HTMLElement && el.sessions.contains(active) ? active.dataset.sessionId : undefined
  el.sessions.replaceChildren(...state.sessions.map(sessionItem))
  if (focused !== undefined) {
    for (const button of el.sessions.querySelectorAll('button'))
      if (button.dataset.sessionId === focused) button.focus()
  }
  const filtered = Object.keys(state.filter).length > 0
  el.sessionsEmpty.textContent = filtered
    ? 'No session of this flow has that metadata.'
    : 'No sessions in this flow yet. Start one above.'
  el.sessionsEmpty.hidden = !state.flowId || state.sessions.length > 0 || state.sessionsLoading
  el.moreSessions.hidden = !state.sessionsNext
}

// ---------------------------------------------------------------------------------------------------------
// Conversation (right)

function closeSession() {
  state.open = null
  state.openGen++
  state.shown.clear()
  state.olderCursor = null
  el.messages.replaceChildren()
  el.title.textContent = 'No session open'
  el.conversationEmpty.textContent = state.flowId
    ? 'Pick a session on the left, or start a new one.'
    : 'Choose a flow first.'
  el.conversationEmpty.hidden = false
  el.older.hidden = true
  el.historyStart.hidden = true
  setConversationControls()
}

function setConversationControls() {
  const open = state.open !== null
  const stored = open && !state.sessions.find((s) => s.session_id === state.open)?.pending
  el.metadataButton.disabled = !stored || state.running
  el.exportButton.disabled = !stored || state.running
  el.rename.disabled = !open || state.running
  el.remove.disabled = !open || state.running
  el.input.disabled = !open || state.running
  el.send.disabled = !open || state.running
}

/** @param {string} sessionId */
async function openSession(sessionId) {
  const api = state.api
  if (!api || !state.flowId) return
  closeSession()
  state.open = sessionId
  const gen = state.openGen
  el.title.textContent = sessionId
  el.conversationEmpty.hidden = true
  renderSessions()
  setConversationControls()
  const row = state.sessions.find((s) => s.session_id === sessionId)
  if (row?.pending) {
    el.conversationEmpty.textContent = 'No messages yet: send the first one below.'
    el.conversationEmpty.hidden = false
    el.input.focus()
    return
  }
  try {
    const page = await api.listMessages(state.flowId, sessionId, { limit: MESSAGES_PAGE })
    if (gen !== state.openGen) return
    const items = /** @type {Message[]} */ (page.items).slice().reverse()
    for (const message of items) appendMessage(message, false)
    state.olderCursor = page.next
    updateHistoryEdge()
    if (items.length === 0) {
      el.conversationEmpty.textContent = 'This session has no messages.'
      el.conversationEmpty.hidden = false
    }
    scrollToEnd()
    maybeLoadOlder()
  } catch (error) {
    if (gen === state.openGen) report(error)
  }
}

function updateHistoryEdge() {
  el.older.hidden = !state.olderCursor
  el.historyStart.hidden = Boolean(state.olderCursor) || state.shown.size === 0
}

/** The page before the oldest one shown, put above it without moving what the person is looking at. */
async function loadOlder() {
  const api = state.api
  if (!api || !state.open || !state.olderCursor || state.olderLoading) return
  const gen = state.openGen
  state.olderLoading = true
  el.older.disabled = true
  try {
    const page = await api.listMessages(state.flowId, state.open, { limit: MESSAGES_PAGE, cursor: state.olderCursor })
    if (gen !== state.openGen) return
    const box = el.messagesScroll
    const fromBottom = box.scrollHeight - box.scrollTop
    const fragment = document.createDocumentFragment()
    for (const message of /** @type {Message[]} */ (page.items).slice().reverse()) {
      if (state.shown.has(message.id)) continue
      state.shown.add(message.id)
      fragment.append(messageItem(message))
    }
    el.messages.prepend(fragment)
    box.scrollTop = box.scrollHeight - fromBottom
    state.olderCursor = page.next
    updateHistoryEdge()
  } catch (error) {
    if (gen === state.openGen) report(error)
  } finally {
    if (gen === state.openGen) state.olderLoading = false
    el.older.disabled = false
  }
  if (gen === state.openGen) maybeLoadOlder()
}

function maybeLoadOlder() {
  if (state.olderCursor && el.messagesScroll.scrollTop < NEAR_EDGE) void loadOlder()
}

function nearEnd() {
  const box = el.messagesScroll
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_EDGE
}

function scrollToEnd() {
  el.messagesScroll.scrollTop = el.messagesScroll.scrollHeight
}

/** "1 token", "1,234 tokens". @param {number} n */
const tokenCount = (n) => `${n.toLocaleString('en-US')} token${n === 1 ? '' : 's'}`

/**
 * The token usage a model reported for a reply (`properties.usage`, as Langflow stores it), when it is whole.
 * @param {Message} message
 * @returns {{ input_tokens: number, output_tokens: number, total_tokens: number } | null}
 */
function messageUsage(message) {
  const usage = /** @type {any} */ (message.properties?.usage)
  if (!usage || typeof usage !== 'object') return null
  const { input_tokens, output_tokens, total_tokens } = usage
  if (![input_tokens, output_tokens, total_tokens].every((n) => Number.isSafeInteger(n) && n >= 0)) return null
  return { input_tokens, output_tokens, total_tokens }
}

/** @param {Message} message */
function messageItem(message) {
  const li = document.createElement('li')
  const isUser = message.sender === 'User'
  const isError = Boolean(message.error) || message.category === 'error'
  li.className = `message ${isUser ? 'user' : 'machine'}${isError ? ' error' : ''}`
  li.dataset.id = message.id
  li.dataset.sender = message.sender
  const head = document.createElement('div')
  head.className = 'head'
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = message.sender_name || message.sender
  head.append(who)
  if (isError) {
    const badge = document.createElement('span')
    badge.className = 'badge'
    badge.textContent = 'Error'
    head.append(badge)
  }
  if (message.timestamp) {
    const time = document.createElement('time')
    time.dateTime = message.timestamp
    time.textContent = when(message.timestamp)
    head.append(time)
  }
  const usage = messageUsage(message)
  if (usage) {
    const tokens = document.createElement('span')
    tokens.className = 'usage'
    tokens.title = `${usage.input_tokens} in, ${usage.output_tokens} out`
    tokens.textContent = tokenCount(usage.total_tokens)
    head.append(tokens)
  }
  if (message.edit) {
    const edited = document.createElement('span')
    edited.className = 'edited'
    edited.textContent = '(edited)'
    head.append(edited)
  }
  const edit = document.createElement('button')
  edit.type = 'button'
  edit.className = 'edit-button'
  edit.textContent = 'Edit'
  edit.setAttribute('aria-label', `Edit message from ${who.textContent}`)
  edit.addEventListener('click', () => startEdit(li, message))
  head.append(edit)
  // a stored message (a streamed reply's bubble has no timestamp yet): fork from it; rate a reply
  if (message.timestamp) {
    if (!isUser && !isError) head.append(...feedbackButtons(li, message))
    const fork = document.createElement('button')
    fork.type = 'button'
    fork.className = 'fork-button'
    fork.textContent = 'Fork from here'
    fork.title = 'Copy the conversation up to this message into a new session'
    fork.setAttribute('aria-label', `Fork the conversation from this message of ${who.textContent}`)
    fork.addEventListener('click', () => forkFrom(message, fork))
    head.append(fork)
  }
  const text = document.createElement('p')
  text.className = 'text'
  text.textContent = message.text ?? ''
  li.append(head, text)
  return li
}

/**
 * Thumbs up and down on a reply: pressed shows the stored feedback; pressing the pressed one takes it back (null).
 * @param {HTMLElement} li
 * @param {Message} message
 */
function feedbackButtons(li, message) {
  const current = message.properties?.positive_feedback
  return /** @type {const} */ ([
    [true, '👍', 'Good reply', 'thumbs-up'],
    [false, '👎', 'Bad reply', 'thumbs-down'],
  ]).map(([value, symbol, label, name]) => {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = `feedback-button ${name}`
    button.textContent = symbol
    button.title = label
    button.setAttribute('aria-label', label)
    button.setAttribute('aria-pressed', String(current === value))
    button.addEventListener('click', async () => {
      if (!state.api) return
      button.disabled = true
      try {
        const updated = await state.api.setFeedback(message, current === value ? null : value)
        const item = messageItem(updated)
        li.replaceWith(item)
        focusIn(item, `.${name}`)
        announce(updated.properties?.positive_feedback === null ? 'Feedback removed' : 'Feedback saved')
        void refreshSessions()
      } catch (error) {
        button.disabled = false
        report(error)
      }
    })
    return button
  })
}

/**
 * Copies the open session up to and including `message` into a new session, then opens it.
 * @param {Message} message
 * @param {HTMLButtonElement} button
 */
async function forkFrom(message, button) {
  const api = state.api
  const sessionId = state.open
  if (!api || !sessionId || state.running) return
  button.disabled = true
  try {
    const fork = await api.forkSession(state.flowId, sessionId, message.id)
    state.sessions = [fork, ...state.sessions.filter((s) => s.session_id !== fork.session_id)]
    renderSessions()
    announce(`Forked into session ${fork.session_id}`)
    await openSession(fork.session_id)
    void refreshSessions()
  } catch (error) {
    button.disabled = false
    report(error)
  }
}

/** Adds a message at the end, or replaces the one shown with the same ID. @param {Message} message */
function appendMessage(message, follow = true) {
  const stick = follow && nearEnd()
  const item = messageItem(message)
  const existing = findMessage(message.id)
  if (existing) existing.replaceWith(item)
  else el.messages.append(item)
  state.shown.add(message.id)
  el.conversationEmpty.hidden = true
  if (stick) scrollToEnd()
}

/** @param {string} id */
function findMessage(id) {
  for (const item of el.messages.children) {
    if (/** @type {HTMLElement} */ (item).dataset.id === id) return /** @type {HTMLElement} */ (item)
  }
  return null
}

/** A streamed token: shown in the reply's bubble (created on the first token). @param {{ chunk: string, id: string }} data */
function appendToken(data) {
  const stick = nearEnd()
  let item = findMessage(data.id)
  if (!item) {
    item = messageItem({
      id: data.id,
      text: '',
      sender: 'Machine',
      sender_name: 'AI',
      session_id: state.open ?? '',
      flow_id: state.flowId,
      timestamp: '',
    })
    item.querySelector('.edit-button')?.remove()
    el.messages.append(item)
    el.conversationEmpty.hidden = true
  }
  const text = /** @type {HTMLElement} */ (item.querySelector('.text'))
  text.classList.add('streaming')
  text.textContent += data.chunk
  if (stick) scrollToEnd()
}

/** @param {HTMLElement} li @param {Message} message */
function startEdit(li, message) {
  if (li.querySelector('textarea')) return
  const text = /** @type {HTMLElement} */ (li.querySelector('.text'))
  const form = document.createElement('form')
  const label = document.createElement('label')
  label.className = 'visually-hidden'
  const id = `edit-${message.id}`
  label.htmlFor = id
  label.textContent = 'Message text'
  const area = document.createElement('textarea')
  area.id = id
  area.value = message.text ?? ''
  area.rows = Math.min(8, Math.max(2, area.value.split('\n').length))
  const row = document.createElement('div')
  row.className = 'row'
  const cancel = document.createElement('button')
  cancel.type = 'button'
  cancel.textContent = 'Cancel'
  const save = document.createElement('button')
  save.type = 'submit'
  save.textContent = 'Save'
  row.append(cancel, save)
  form.append(label, area, row)
  text.hidden = true
  li.append(form)
  area.focus()
  const stop = () => {
    form.remove()
    text.hidden = false
    focusIn(li, '.edit-button')
  }
  cancel.addEventListener('click', stop)
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault()
      stop()
    }
  })
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (!state.api) return
    save.disabled = true
    try {
      const updated = await state.api.editMessage(message.id, area.value)
      const item = messageItem(updated)
      li.replaceWith(item)
      focusIn(item, '.edit-button')
      announce('Message saved')
      void refreshSessions()
    } catch (error) {
      save.disabled = false
      report(error)
    }
  })
}

// ---------------------------------------------------------------------------------------------------------
// Running, creating, renaming, deleting

async function sendMessage() {
  const api = state.api
  const sessionId = state.open
  const text = el.input.value
  if (!api || !sessionId || state.running || text.trim() === '') return
  const gen = state.openGen
  state.running = true
  setConversationControls()
  clearNotice()
  announce('Running the flow…')
  el.input.value = ''
  try {
    await api.run(state.flowId, sessionId, text, (event) => {
      if (gen !== state.openGen) return
      if (event.event === 'add_message' && event.data?.session_id === sessionId) {
        if (!event.data.flow_id || event.data.flow_id === state.flowId) appendMessage(event.data)
      } else if (event.event === 'token' && event.data?.id) {
        appendToken(event.data)
      }
    })
    announce('Run finished')
  } catch (error) {
    if (gen === state.openGen && el.input.value === '') el.input.value = text
    report(error)
  } finally {
    state.running = false
    setConversationControls()
    for (const streaming of el.messages.querySelectorAll('.streaming')) streaming.classList.remove('streaming')
    if (gen === state.openGen) el.input.focus()
  }
  await refreshSessions()
}

/** A session ID for a new session; randomUUID needs a secure context, getRandomValues does not. */
function generatedId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function newSession() {
  if (!state.api || !state.flowId) return
  const typed = el.newId.value
  if (typed !== '' && typed.trim() === '') {
    showNotice('A session ID cannot be only spaces.')
    return
  }
  const sessionId = typed === '' ? generatedId() : typed
  if ([...sessionId].length > 255) {
    showNotice('A session ID can have at most 255 characters.')
    return
  }
  clearNotice()
  el.newId.value = ''
  if (!state.sessions.some((s) => s.session_id === sessionId)) {
    state.sessions.unshift({
      session_id: sessionId,
      flow_id: state.flowId,
      message_count: 0,
      first_timestamp: '',
      last_timestamp: '',
      last_text: '',
      pending: true,
    })
  }
  announce(`Session ${sessionId} started`)
  void openSession(sessionId)
}

function openRename() {
  if (!state.open) return
  el.renameInput.value = state.open
  el.renameError.hidden = true
  el.renameDialog.showModal()
  el.renameInput.select()
}

async function confirmRename() {
  const api = state.api
  const from = state.open
  const to = el.renameInput.value
  if (!api || !from) return
  if (to.trim() === '') {
    showRenameError('Enter a session ID.')
    return
  }
  if (to === from) {
    el.renameDialog.close()
    return
  }
  const row = state.sessions.find((s) => s.session_id === from)
  if (state.sessions.some((s) => s.session_id === to)) {
    showRenameError(`A session named “${to}” already exists in this flow. Pick another ID.`)
    return
  }
  try {
    if (!row?.pending) await api.renameSession(state.flowId, from, to)
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      showRenameError(`A session named “${to}” already exists in this flow. Pick another ID.`)
    } else if (error instanceof ApiError && error.kind === 'http') {
      showRenameError(error.message)
    } else {
      el.renameDialog.close()
      report(error)
    }
    return
  }
  el.renameDialog.close()
  if (row) row.session_id = to
  state.open = to
  el.title.textContent = to
  renderSessions()
  announce(`Session renamed to ${to}`)
  await refreshSessions()
}

/** @param {string} text */
function showRenameError(text) {
  el.renameError.textContent = text
  el.renameError.hidden = false
  el.renameInput.focus()
}

function openDelete() {
  if (!state.open) return
  el.deleteName.textContent = state.open
  el.deleteDialog.showModal()
  focusIn(el.deleteDialog, '#delete-cancel')
}

async function confirmDelete() {
  const api = state.api
  const sessionId = state.open
  if (!api || !sessionId) return
  el.deleteDialog.close()
  const row = state.sessions.find((s) => s.session_id === sessionId)
  try {
    if (!row?.pending) await api.deleteSession(state.flowId, sessionId)
  } catch (error) {
    report(error)
    return
  }
  state.sessions = state.sessions.filter((s) => s.session_id !== sessionId)
  closeSession()
  renderSessions()
  announce(`Session ${sessionId} deleted`)
  el.newId.focus()
}

// ---------------------------------------------------------------------------------------------------------
// Search, metadata filter, metadata, export, retention

function closeSearch() {
  state.search = null
  state.searchGen++
  el.hits.replaceChildren()
  el.searchResults.hidden = true
  el.sessions.hidden = false
  renderSessions()
}

/** @param {string} q */
async function startSearch(q) {
  if (!state.api || !state.flowId) return
  if (q.trim() === '') {
    closeSearch()
    return
  }
  clearNotice()
  state.searchGen++
  state.search = { q, next: null, loading: false, gen: state.searchGen }
  el.hits.replaceChildren()
  el.hitsEmpty.hidden = true
  el.moreHits.hidden = true
  el.searchResults.hidden = false
  el.sessions.hidden = true
  el.sessionsEmpty.hidden = true
  el.moreSessions.hidden = true
  await loadHits()
}

/** The next page of search results. */
async function loadHits() {
  const api = state.api
  const search = state.search
  if (!api || !search || search.loading) return
  search.loading = true
  el.moreHits.disabled = true
  try {
    const page = await api.searchMessages(state.flowId, search.q, { limit: HITS_PAGE, cursor: search.next })
    if (search.gen !== state.searchGen) return
    for (const message of /** @type {Message[]} */ (page.items)) el.hits.append(hitItem(message))
    search.next = page.next
    el.hitsEmpty.hidden = el.hits.children.length > 0
    el.moreHits.hidden = !page.next
    announce(`${el.hits.children.length}${page.next ? '+' : ''} messages found`)
  } catch (error) {
    if (search.gen === state.searchGen) report(error)
  } finally {
    search.loading = false
    el.moreHits.disabled = false
  }
}

/** @param {Message} message */
function hitItem(message) {
  const li = document.createElement('li')
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'hit'
  button.dataset.id = message.id
  button.dataset.sessionId = message.session_id
  const sid = document.createElement('span')
  sid.className = 'sid'
  sid.textContent = `${message.session_id} · ${message.sender_name || message.sender} · ${when(message.timestamp)}`
  const text = document.createElement('span')
  text.className = 'text'
  text.textContent = message.text
  button.append(sid, text)
  button.addEventListener('click', () => void openSessionAt(message.session_id, message.id))
  li.append(button)
  return li
}

/** Opens a session and brings one of its messages into view, loading older pages until it is shown. */
async function openSessionAt(/** @type {string} */ sessionId, /** @type {string} */ messageId) {
  await openSession(sessionId)
  const gen = state.openGen
  for (let pages = 0; !findMessage(messageId) && state.olderCursor && pages < MAX_PAGES_TO_HIT; pages++) {
    await loadOlder()
    if (gen !== state.openGen) return
  }
  const item = findMessage(messageId)
  if (!item) {
    showNotice('That message is no longer in the session (it was deleted or the session renamed).', 'info')
    return
  }
  for (const found of el.messages.querySelectorAll('.found')) found.classList.remove('found')
  item.classList.add('found')
  item.scrollIntoView({ block: 'center' })
  focusIn(item, '.edit-button')
}

/** "k=v, k2=v2" → { k: 'v', k2: 'v2' }; throws a message for a person. @param {string} text */
function parseFilter(text) {
  /** @type {Record<string, string>} */
  const filter = {}
  for (const part of text.split(',')) {
    if (part.trim() === '') continue
    const eq = part.indexOf('=')
    const key = (eq === -1 ? part : part.slice(0, eq)).trim()
    if (eq === -1 || !METADATA_KEY.test(key)) {
      throw new Error(`“${part.trim()}” is not key=value with a key of letters, digits, _ . - (1–64 characters).`)
    }
    filter[key] = part.slice(eq + 1).trim()
  }
  return filter
}

/** @param {string} text */
function applyFilter(text) {
  let filter
  try {
    filter = parseFilter(text)
  } catch (error) {
    showNotice(/** @type {Error} */ (error).message)
    return
  }
  clearNotice()
  state.filter = filter
  el.filterClear.hidden = Object.keys(filter).length === 0
  state.flowGen++
  state.sessions = []
  state.sessionsNext = null
  state.sessionsLoading = false
  // cleared until the filtered list arrives (not "no session has that metadata" before it is known)
  el.sessions.replaceChildren()
  el.sessionsEmpty.hidden = true
  el.moreSessions.hidden = true
  void loadSessions()
}

/** @param {string} key @param {string} value */
function metadataRow(key, value) {
  const li = document.createElement('li')
  li.className = 'row'
  const n = el.metadataRows.children.length + 1
  const keyInput = document.createElement('input')
  keyInput.className = 'metadata-key'
  keyInput.value = key
  keyInput.maxLength = 64
  keyInput.setAttribute('aria-label', `Key ${n}`)
  const valueInput = document.createElement('input')
  valueInput.className = 'metadata-value'
  valueInput.value = value
  valueInput.maxLength = 512
  valueInput.setAttribute('aria-label', `Value ${n}`)
  const remove = document.createElement('button')
  remove.type = 'button'
  remove.textContent = 'Remove'
  remove.setAttribute('aria-label', `Remove key ${n}`)
  remove.addEventListener('click', () => li.remove())
  li.append(keyInput, valueInput, remove)
  return li
}

function openMetadata() {
  const row = state.sessions.find((s) => s.session_id === state.open)
  if (!state.open || !row) return
  el.metadataRows.replaceChildren(...Object.entries(row.metadata ?? {}).map(([key, value]) => metadataRow(key, value)))
  el.metadataError.hidden = true
  el.metadataDialog.showModal()
  if (el.metadataRows.children.length === 0) el.metadataRows.append(metadataRow('', ''))
  focusIn(el.metadataRows, 'input')
}

/** @param {string} text */
function showMetadataError(text) {
  el.metadataError.textContent = text
  el.metadataError.hidden = false
}

async function saveMetadata() {
  const api = state.api
  const sessionId = state.open
  const row = state.sessions.find((s) => s.session_id === sessionId)
  if (!api || !sessionId || !row) return
  /** @type {Record<string, string>} */
  const wanted = {}
  for (const li of el.metadataRows.children) {
    const key = /** @type {HTMLInputElement} */ (li.querySelector('.metadata-key')).value.trim()
    const value = /** @type {HTMLInputElement} */ (li.querySelector('.metadata-value')).value
    if (key === '' && value === '') continue
    if (!METADATA_KEY.test(key)) {
      showMetadataError(`“${key}” is not a valid key: 1–64 letters, digits, _ . -`)
      return
    }
    if (key in wanted) {
      showMetadataError(`The key “${key}” appears twice.`)
      return
    }
    wanted[key] = value
  }
  if (Object.keys(wanted).length > METADATA_MAX_KEYS) {
    showMetadataError(`A session has at most ${METADATA_MAX_KEYS} keys.`)
    return
  }
  /** @type {Record<string, string | null>} */
  const patch = { ...wanted }
  for (const key of Object.keys(row.metadata ?? {})) if (!(key in wanted)) patch[key] = null
  try {
    const summary = await api.updateSessionMetadata(state.flowId, sessionId, patch)
    row.metadata = summary.metadata ?? wanted
  } catch (error) {
    if (error instanceof ApiError && error.kind === 'http') showMetadataError(error.message)
    else {
      el.metadataDialog.close()
      report(error)
    }
    return
  }
  el.metadataDialog.close()
  renderSessions()
  announce('Metadata saved')
}

/** A file name for a session's export: the ID with characters file systems refuse replaced. @param {string} id */
const exportName = (id) =>
  `${Array.from(id, (c) => (c < ' ' || '\\/:*?"<>|'.includes(c) ? '_' : c))
    .join('')
    .slice(0, 200)}.ndjson`

async function exportOpenSession() {
  const api = state.api
  const sessionId = state.open
  if (!api || !sessionId) return
  el.exportButton.disabled = true
  try {
    const blob = await api.exportSession(state.flowId, sessionId)
    const href = URL.createObjectURL(blob)
    const link = document.createElement('a')
    link.href = href
    link.download = exportName(sessionId)
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(href), 60_000)
    announce(`Session ${sessionId} exported`)
  } catch (error) {
    report(error)
  } finally {
    setConversationControls()
  }
}

const UNITS = /** @type {const} */ ([
  [86400, 'day'],
  [3600, 'hour'],
  [60, 'minute'],
  [1, 'second'],
])

/** @param {number} seconds */
function duration(seconds) {
  const [unit, name] = UNITS.find(([size]) => seconds % size === 0) ?? [1, 'second']
  const n = seconds / unit
  return `${n} ${name}${n === 1 ? '' : 's'}`
}

function renderRetention() {
  const r = state.retention
  if (!state.flowId || !r) {
    el.retentionText.textContent = ''
    return
  }
  el.retentionText.textContent =
    r.max_idle_seconds === null
      ? 'Retention: sessions are kept until deleted'
      : `Retention: sessions idle for ${duration(r.max_idle_seconds)} are deleted (${r.source === 'flow' ? 'this flow' : 'tenant default'})`
}

async function loadRetention() {
  const api = state.api
  const flowId = state.flowId
  state.retention = null
  renderRetention()
  if (!api || !flowId) return
  try {
    const retention = await api.getRetention(flowId)
    if (flowId !== state.flowId) return
    state.retention = retention
    renderRetention()
  } catch (error) {
    if (flowId === state.flowId) report(error)
  }
}

function openRetention() {
  if (!state.flowId) return
  const seconds = state.retention?.max_idle_seconds ?? null
  const [unit] = UNITS.find(([size]) => size >= 60 && seconds !== null && seconds % size === 0) ?? [86400]
  el.retentionUnit.value = String(unit)
  el.retentionValue.value = seconds === null ? '' : String(seconds / unit)
  el.retentionCurrent.textContent = el.retentionText.textContent
  el.retentionError.hidden = true
  el.retentionDialog.showModal()
  el.retentionValue.focus()
}

/** @param {number | null} seconds */
async function saveRetention(seconds) {
  const api = state.api
  if (!api || !state.flowId) return
  if (seconds !== null && (!Number.isInteger(seconds) || seconds < 1)) {
    el.retentionError.textContent = 'Enter a whole number of at least 1.'
    el.retentionError.hidden = false
    return
  }
  try {
    await api.setFlowRetention(state.flowId, seconds)
  } catch (error) {
    if (error instanceof ApiError && error.kind === 'http') {
      el.retentionError.textContent = error.message
      el.retentionError.hidden = false
    } else {
      el.retentionDialog.close()
      report(error)
    }
    return
  }
  el.retentionDialog.close()
  await loadRetention()
  announce('Retention saved')
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

el.keyForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const key = el.key.value.trim()
  if (key) void useKey(key)
})
el.forgetKey.addEventListener('click', forgetKey)
el.flow.addEventListener('change', () => selectFlow(el.flow.value))
el.newForm.addEventListener('submit', (event) => {
  event.preventDefault()
  newSession()
})
el.sessionsScroll.addEventListener('scroll', maybeLoadMoreSessions, { passive: true })
el.moreSessions.addEventListener('click', () => void loadSessions())
el.messagesScroll.addEventListener('scroll', maybeLoadOlder, { passive: true })
el.older.addEventListener('click', () => void loadOlder())
el.composer.addEventListener('submit', (event) => {
  event.preventDefault()
  void sendMessage()
})
el.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    void sendMessage()
  }
})
el.rename.addEventListener('click', openRename)
el.renameCancel.addEventListener('click', () => el.renameDialog.close())
el.renameForm.addEventListener('submit', (event) => {
  event.preventDefault()
  void confirmRename()
})
el.remove.addEventListener('click', openDelete)
el.deleteCancel.addEventListener('click', () => el.deleteDialog.close())
el.deleteForm.addEventListener('submit', (event) => {
  event.preventDefault()
  void confirmDelete()
})
el.searchForm.addEventListener('submit', (event) => {
  event.preventDefault()
  void startSearch(el.searchInput.value)
})
el.searchClose.addEventListener('click', () => {
  el.searchInput.value = ''
  closeSearch()
})
el.moreHits.addEventListener('click', () => void loadHits())
el.filterForm.addEventListener('submit', (event) => {
  event.preventDefault()
  applyFilter(el.filterInput.value)
})
el.filterClear.addEventListener('click', () => {
  el.filterInput.value = ''
  applyFilter('')
})
el.metadataButton.addEventListener('click', openMetadata)
el.metadataAdd.addEventListener('click', () => {
  el.metadataRows.append(metadataRow('', ''))
  focusIn(/** @type {HTMLElement} */ (el.metadataRows.lastElementChild), 'input')
})
el.metadataCancel.addEventListener('click', () => el.metadataDialog.close())
el.metadataForm.addEventListener('submit', (event) => {
  event.preventDefault()
  void saveMetadata()
})
el.exportButton.addEventListener('click', () => void exportOpenSession())
el.retentionEdit.addEventListener('click', openRetention)
el.retentionCancel.addEventListener('click', () => el.retentionDialog.close())
el.retentionDefault.addEventListener('click', () => void saveRetention(null))
el.retentionForm.addEventListener('submit', (event) => {
  event.preventDefault()
  void saveRetention(Number(el.retentionValue.value) * Number(el.retentionUnit.value))
})

closeSession()
const storedKey = sessionStorage.getItem(KEY_STORAGE)
if (storedKey) void useKey(storedKey)
else el.key.focus()
