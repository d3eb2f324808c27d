import type { ComponentDefinition } from '../graph-model.js'
import { messageValue, toBool, toStringList, toText } from '../values.js'
import { CHAT_FIELDS, chatDraft } from './chat-message.js'

/** The user's message: emitted, and stored when `should_store_message`. */
export const chatInput: ComponentDefinition = {
  type: 'ChatInput',
  inputs: [...CHAT_FIELDS, 'files'],
  outputs: ['message'],
  io: { role: 'input', kind: 'chat' },
  emitsMessages: true,
  readsMessages: false,
  async run(ctx, inputs) {
    const draft = chatDraft(inputs, {
      text: toText(inputs.input_value),
      defaultSender: 'User',
      defaultSenderName: 'User',
      files: toStringList(inputs.files),
    })
    const message = await ctx.emit(draft, { store: toBool(inputs.should_store_message, true) })
    return { message: messageValue(message) }
  },
}
