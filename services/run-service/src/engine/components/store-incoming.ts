import type { ComponentContext, ComponentInputs, ComponentOutputs } from '../graph-model.js'
import { messageValue, toText } from '../values.js'

/** Memory's Retrieve filter value that means "no filter"; never a sender to store with. */
export const ANY_SENDER = 'Machine and User'

/**
 * Memory Store and StoreMessage: stores the `message` input in the component's session, with the
 * node's `sender` / `sender_name` when set, else the incoming message's, else Machine / AI.
 */
export async function storeIncoming(ctx: ComponentContext, inputs: ComponentInputs): Promise<ComponentOutputs> {
  const incoming = inputs.message?.kind === 'message' ? inputs.message.message : undefined
  const sender = toText(inputs.sender)
  const stored = await ctx.emit({
    text: toText(inputs.message),
    sender: (sender !== ANY_SENDER && sender) || incoming?.sender || 'Machine',
    senderName: toText(inputs.sender_name) || incoming?.sender_name || 'AI',
    files: incoming?.files ?? [],
    contextId: toText(inputs.context_id) || incoming?.context_id || '',
  })
  return { stored_messages: messageValue(stored) }
}
