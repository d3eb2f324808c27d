import type { ComponentInputs, FlowNode } from '../graph-model.js'
import { type MessageDraft, messageProperties } from '../messages.js'
import { toText } from '../values.js'

/** Fields ChatInput and ChatOutput share. */
export const CHAT_FIELDS = [
  'input_value',
  'should_store_message',
  'sender',
  'sender_name',
  'session_id',
  'context_id',
  'background_color',
  'chat_icon',
  'text_color',
] as const

export interface ChatDraftFields {
  text: string
  defaultSender: string
  defaultSenderName: string
  files: string[]
  /** The component the message came from (ChatOutput: the node feeding `input_value`). */
  source?: FlowNode
  /** A model's token usage the message carries on (ChatOutput: its input Message's `properties.usage`). */
  usage?: unknown
}

/** A chat message drafted from the node's fields; an empty sender or sender name takes its default. */
export function chatDraft(inputs: ComponentInputs, fields: ChatDraftFields): MessageDraft {
  const optional = (field: string) => toText(inputs[field]) || null
  return {
    text: fields.text,
    sender: toText(inputs.sender) || fields.defaultSender,
    senderName: toText(inputs.sender_name) || fields.defaultSenderName,
    files: fields.files,
    contextId: toText(inputs.context_id),
    properties: messageProperties({
      text_color: optional('text_color'),
      background_color: optional('background_color'),
      icon: optional('chat_icon'),
      source: { id: fields.source?.id ?? null, display_name: fields.source?.displayName ?? null, source: null },
      ...(fields.usage ? { usage: fields.usage } : {}),
    }),
  }
}
