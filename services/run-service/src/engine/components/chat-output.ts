import type { ComponentDefinition } from '../graph-model.js'
import { messageValue, toBool, toText } from '../values.js'
import { CHAT_FIELDS, chatDraft } from './chat-message.js'

/** Converts its input (Message, Data, DataFrame or text) to text; emits and stores the reply. */
export const chatOutput: ComponentDefinition = {
  type: 'ChatOutput',
  inputs: [...CHAT_FIELDS, 'data_template', 'clean_data'],
  outputs: ['message'],
  io: { role: 'output', kind: 'chat' },
  emitsMessages: true,
  readsMessages: false,
  mainInput: 'input_value',
  readsMessageContentOnly: true,
  async run(ctx, inputs) {
    const input = inputs.input_value
    const draft = chatDraft(inputs, {
      text: toText(input, toText(inputs.data_template) || '{text}'),
      defaultSender: 'Machine',
      defaultSenderName: 'AI',
      files: input?.kind === 'message' ? input.message.files : [],
      source: ctx.upstream('input_value'),
      usage: input?.kind === 'message' ? input.message.properties?.usage : undefined,
    })
    const message = await ctx.emit(draft, { store: toBool(inputs.should_store_message, true) })
    return { message: messageValue(message) }
  },
}
