import { randomUUID } from 'node:crypto'
import type { Message, MessageInput } from '@session-runtime/schemas'

/** What a component says when it emits a message; the executor adds id, flow and session. */
export interface MessageDraft {
  text: string
  sender: string
  senderName: string
  files?: string[]
  properties?: Record<string, unknown>
  contextId?: string
  category?: string
  error?: boolean
}

/** Message ids and where the message belongs. */
export interface MessagePlace {
  id: string
  flowId: string
  sessionId: string
}

/** ISO-8601 UTC with microseconds, like the message-store's timestamps. */
export function nowTimestamp(): string {
  return new Date().toISOString().replace('Z', '000Z')
}

/** Langflow's message Properties with their defaults, and the given ones on top. */
export function messageProperties(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    text_color: null,
    background_color: null,
    edited: false,
    source: { id: null, display_name: null, source: null },
    icon: null,
    allow_markdown: false,
    positive_feedback: null,
    state: 'complete',
    targets: [],
    ...overrides,
  }
}

export function messageInput(draft: MessageDraft, place: MessagePlace): MessageInput {
  return {
    id: place.id,
    flow_id: place.flowId,
    session_id: place.sessionId,
    sender: draft.sender,
    sender_name: draft.senderName,
    text: draft.text,
    files: draft.files ?? [],
    error: draft.error ?? false,
    edit: false,
    properties: draft.properties ?? messageProperties(),
    category: draft.category ?? 'message',
    content_blocks: [],
    context_id: draft.contextId ?? '',
  }
}

/** The Message an input would become, for messages that are not stored. */
export function localMessage(input: MessageInput): Message {
  return {
    id: input.id,
    flow_id: input.flow_id,
    session_id: input.session_id,
    sender: input.sender,
    sender_name: input.sender_name,
    text: input.text,
    timestamp: nowTimestamp(),
    files: input.files ?? [],
    error: input.error ?? false,
    edit: input.edit ?? false,
    properties: input.properties ?? messageProperties(),
    category: input.category ?? 'message',
    content_blocks: input.content_blocks ?? [],
    context_id: input.context_id ?? '',
  }
}

/**
 * A message on its way to the store, as the store will answer it but for the timestamp (the store assigns it):
 * lone UTF-16 surrogates become U+FFFD, as the message-store client sends them and Postgres stores them.
 */
export function draftMessage(input: MessageInput): Message {
  return wellFormed(localMessage(input))
}

/** ES2024's String methods (Node 20 has them; the TypeScript lib here is ES2023). */
type WellFormedString = { isWellFormed(): boolean; toWellFormed(): string }

/** `value` with every string well-formed; the same value (not a copy) when nothing changes. */
function wellFormed<T>(value: T): T {
  return fixStrings(value) as T
}

function fixStrings(value: unknown): unknown {
  if (typeof value === 'string') {
    const text = value as unknown as WellFormedString
    return text.isWellFormed() ? value : text.toWellFormed()
  }
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    const items = value.map(fixStrings)
    return items.some((item, index) => item !== value[index]) ? items : value
  }
  let copy: Record<string, unknown> | undefined
  for (const [key, entry] of Object.entries(value)) {
    const fixed = fixStrings(entry)
    if (fixed === entry) continue
    copy ??= { ...value }
    copy[key] = fixed
  }
  return copy ?? value
}

export interface PlainMessageFields {
  flowId: string
  text: string
  /** '' (the default) = the message carries no session: plain text (spec §2). */
  sessionId?: string
  sender?: string
  senderName?: string
  /** Properties over the defaults (a model's reply: its `usage`). */
  properties?: Record<string, unknown>
}

/** An unstored Message wrapping a value, e.g. a Prompt's text or a model's reply. */
export function plainMessage(fields: PlainMessageFields): Message {
  const draft = {
    text: fields.text,
    sender: fields.sender ?? '',
    senderName: fields.senderName ?? '',
    ...(fields.properties ? { properties: messageProperties(fields.properties) } : {}),
  }
  return localMessage(
    messageInput(draft, { id: randomUUID(), flowId: fields.flowId, sessionId: fields.sessionId ?? '' }),
  )
}
