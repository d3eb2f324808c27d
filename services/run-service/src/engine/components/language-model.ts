import type { FlowValue } from '../values.js'
import { chatModelComponent, nodeText } from './chat-model.js'

/**
 * Language Model: `model` is a list whose first item's `name` is the model (`[]` = not configured;
 * older exports have a `model_name` text); `api_key` on the node; the base URL is configured.
 */
export const languageModel = chatModelComponent('LanguageModelComponent', ['model', 'model_name'], (inputs) => ({
  model: selectedModel(inputs.model) || nodeText(inputs.model_name),
  baseUrl: '',
  apiKey: nodeText(inputs.api_key),
}))

function selectedModel(value: FlowValue | undefined): string {
  if (value?.kind !== 'raw') return ''
  if (typeof value.value === 'string') return value.value.trim()
  const first: unknown = Array.isArray(value.value) ? value.value[0] : undefined
  const name = typeof first === 'object' && first !== null ? (first as { name?: unknown }).name : undefined
  return typeof name === 'string' ? name.trim() : ''
}
