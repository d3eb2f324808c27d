import type { ComponentDefinition } from '../graph-model.js'
import type { FlowValue } from '../values.js'
import { completeChat, MODEL_FIELDS, nodeText } from './chat-model.js'

/**
 * Language Model: `model` is a list whose first item's `name` is the model (`[]` = not configured;
 * older exports have a `model_name` text); `api_key` on the node; the base URL is configured.
 */
export const languageModel: ComponentDefinition = {
  type: 'LanguageModelComponent',
  inputs: [...MODEL_FIELDS, 'model', 'model_name'],
  outputs: ['text_output'],
  emitsMessages: false,
  readsMessages: false,
  mainInput: 'input_value',
  streamsTokens: true,
  run: (ctx, inputs) =>
    completeChat(ctx, inputs, {
      model: selectedModel(inputs.model) || nodeText(inputs.model_name),
      baseUrl: '',
      apiKey: nodeText(inputs.api_key),
    }),
}

function selectedModel(value: FlowValue | undefined): string {
  if (value?.kind !== 'raw') return ''
  if (typeof value.value === 'string') return value.value.trim()
  const first: unknown = Array.isArray(value.value) ? value.value[0] : undefined
  const name = typeof first === 'object' && first !== null ? (first as { name?: unknown }).name : undefined
  return typeof name === 'string' ? name.trim() : ''
}
