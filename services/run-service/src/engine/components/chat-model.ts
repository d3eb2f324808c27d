import type { ComponentContext, ComponentDefinition, ComponentInputs, ComponentOutputs } from '../graph-model.js'
import { plainMessage } from '../messages.js'
import { type FlowValue, messageValue, toBool, toNumber, toText } from '../values.js'

/** Fields every chat model has. */
const MODEL_FIELDS = ['input_value', 'system_message', 'temperature', 'stream', 'max_tokens', 'api_key'] as const

/** What a model node sets itself; empty values are filled from the configured defaults. */
export interface NodeModelSettings {
  model: string
  baseUrl: string
  apiKey: string
}

/**
 * A chat model component: the fields every chat model has plus its own `fields`, from which
 * `settings` reads what the node sets itself; it runs one chat completion (completeChat).
 */
export function chatModelComponent(
  type: string,
  fields: readonly string[],
  settings: (inputs: ComponentInputs) => NodeModelSettings,
): ComponentDefinition {
  return {
    type,
    inputs: [...MODEL_FIELDS, ...fields],
    outputs: ['text_output'],
    emitsMessages: false,
    readsMessages: false,
    mainInput: 'input_value',
    streamsTokens: true,
    readsMessageContentOnly: true,
    run: (ctx, inputs) => completeChat(ctx, inputs, settings(inputs)),
  }
}

/**
 * One chat completion through the model port. A non-empty node value wins over the defaults.
 * Streams (token events) when streaming is asked for (`stream` field or the run's `?stream=true`)
 * and the reply goes straight into a ChatOutput. Output `text_output` carries the model's session, and the
 * provider's token usage as `properties.usage` (Langflow's `{input_tokens, output_tokens, total_tokens}`).
 */
async function completeChat(
  ctx: ComponentContext,
  inputs: ComponentInputs,
  node: NodeModelSettings,
): Promise<ComponentOutputs> {
  const model = node.model || ctx.modelDefaults.defaultModel
  if (!model) throw new Error('no model configured: set one on the node or configure a default model')
  const { onToken } = ctx.stream
  const stream = onToken !== undefined && (ctx.stream.requested || toBool(inputs.stream, false))
  const maxTokens = Math.floor(toNumber(inputs.max_tokens, 0))
  const reply = await ctx.model.complete({
    model,
    baseUrl: node.baseUrl || ctx.modelDefaults.baseUrl,
    apiKey: node.apiKey || ctx.modelDefaults.apiKey,
    system: toText(inputs.system_message) || undefined,
    input: toText(inputs.input_value),
    temperature: toNumber(inputs.temperature, 0.1),
    maxTokens: maxTokens > 0 ? maxTokens : undefined,
    stream,
    onToken: stream ? onToken : undefined,
  })
  const text = plainMessage({
    flowId: ctx.flowId,
    text: reply.text,
    sessionId: ctx.sessionId,
    sender: 'Machine',
    senderName: 'AI',
    // Langflow's `properties.usage`: the ChatOutput storing this reply keeps it
    ...(reply.usage ? { properties: { usage: reply.usage } } : {}),
  })
  return { text_output: messageValue(text) }
}

/** A node's text field, '' when unset. */
export function nodeText(value: FlowValue | undefined): string {
  return toText(value).trim()
}
