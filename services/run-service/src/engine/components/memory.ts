import { HISTORY_MAX } from '@session-runtime/schemas'
import type { ComponentContext, ComponentDefinition, ComponentInputs, ComponentOutputs } from '../graph-model.js'
import { plainMessage } from '../messages.js'
import { dataFrameValue, formatTemplate, messageRecord, messageValue, toNumber, toText } from '../values.js'
import { ANY_SENDER, storeIncoming } from './store-incoming.js'

/** Message History: Retrieve (default) reads the session's history; Store writes `message` into it. */
export const memory: ComponentDefinition = {
  type: 'Memory',
  inputs: [
    'mode',
    'message',
    'n_messages',
    'order',
    'sender_type',
    'sender',
    'sender_name',
    'session_id',
    'context_id',
    'template',
  ],
  outputs: ['messages_text', 'dataframe', 'stored_messages'],
  emitsMessages: true,
  readsMessages: true,
  mainInput: 'message',
  readsMessageContentOnly: true,
  async run(ctx, inputs) {
    return toText(inputs.mode) === 'Store' ? storeIncoming(ctx, inputs) : retrieve(ctx, inputs)
  },
}

async function retrieve(ctx: ComponentContext, inputs: ComponentInputs): Promise<ComponentOutputs> {
  const limit = Math.min(Math.floor(toNumber(inputs.n_messages, 100)), HISTORY_MAX)
  const messages =
    limit < 1
      ? []
      : await ctx.messages.history({
          flowId: ctx.flowId,
          sessionId: ctx.sessionId,
          limit,
          order: toText(inputs.order) === 'Descending' ? 'DESC' : 'ASC',
          sender: senderFilter(inputs),
          senderName: toText(inputs.sender_name) || undefined,
        })
  const template = toText(inputs.template) || '{sender_name}: {text}'
  const text = messages.map((message) => formatTemplate(template, message)).join('\n')
  return {
    messages_text: messageValue(plainMessage({ flowId: ctx.flowId, text, sessionId: ctx.sessionId })),
    dataframe: dataFrameValue(messages.map(messageRecord)),
  }
}

/** `sender_type` when the node has it, else the older `sender`; "Machine and User" = no filter. */
function senderFilter(inputs: ComponentInputs): string | undefined {
  const filter = toText(inputs.sender_type !== undefined ? inputs.sender_type : inputs.sender)
  return filter === '' || filter === ANY_SENDER ? undefined : filter
}
