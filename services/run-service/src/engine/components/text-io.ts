import type { ComponentDefinition } from '../graph-model.js'
import { plainMessage } from '../messages.js'
import { messageValue, toText } from '../values.js'

/** Text Input and Text Output: pass text through; store nothing; their text carries no session. */
function textPassThrough(type: string, role: 'input' | 'output'): ComponentDefinition {
  return {
    type,
    inputs: ['input_value'],
    outputs: ['text'],
    io: { role, kind: 'text' },
    emitsMessages: false,
    readsMessages: false,
    readsMessageContentOnly: true,
    async run(ctx, inputs) {
      return { text: messageValue(plainMessage({ flowId: ctx.flowId, text: toText(inputs.input_value) })) }
    },
  }
}

export const textInput = textPassThrough('TextInput', 'input')
export const textOutput = textPassThrough('TextOutput', 'output')
