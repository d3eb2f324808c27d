import type { ComponentDefinition } from '../graph-model.js'
import { completeChat, MODEL_FIELDS, nodeText } from './chat-model.js'

/** OpenAI: `model_name`, `openai_api_base` and `api_key` on the node, else the configured defaults. */
export const openAIModel: ComponentDefinition = {
  type: 'OpenAIModel',
  inputs: [...MODEL_FIELDS, 'model_name', 'openai_api_base'],
  outputs: ['text_output'],
  emitsMessages: false,
  readsMessages: false,
  mainInput: 'input_value',
  streamsTokens: true,
  run: (ctx, inputs) =>
    completeChat(ctx, inputs, {
      model: nodeText(inputs.model_name),
      baseUrl: nodeText(inputs.openai_api_base),
      apiKey: nodeText(inputs.api_key),
    }),
}
