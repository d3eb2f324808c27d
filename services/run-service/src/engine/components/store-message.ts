import type { ComponentDefinition } from '../graph-model.js'
import { storeIncoming } from './store-incoming.js'

/** Stores its `message` input (with `sender`, `sender_name`, `session_id`). */
export const storeMessage: ComponentDefinition = {
  type: 'StoreMessage',
  inputs: ['message', 'sender', 'sender_name', 'session_id'],
  outputs: ['stored_messages'],
  emitsMessages: true,
  readsMessages: false,
  mainInput: 'message',
  readsMessageContentOnly: true,
  run: storeIncoming,
}
