import { chatModelComponent, nodeText } from './chat-model.js'

/** OpenAI: `model_name`, `openai_api_base` and `api_key` on the node, else the configured defaults. */
export const openAIModel = chatModelComponent('OpenAIModel', ['model_name', 'openai_api_base'], (inputs) => ({
  model: nodeText(inputs.model_name),
  baseUrl: nodeText(inputs.openai_api_base),
  apiKey: nodeText(inputs.api_key),
}))
