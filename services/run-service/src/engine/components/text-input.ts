import type { ComponentDefinition } from '../graph-model.js'
import { plainMessage } from '../messages.js'
import { messageValue, toText } from '../values.js'

/** Passes text through; stores nothing; its text carries no session. */
export const textInput: ComponentDefinition = {
  type: 'TextInput',
  inputs: ['input_value'],
  outputs: ['text'],
  io: { role: 'input', kind: 'text' },
  emitsMessages: false,
  readsMessages: false,
  async run(ctx, inputs) {
    return { text: messageValue(plainMessage({ flowId: ctx.flowId, text: toText(inputs.input_value) })) }
  },
}
