import OpenAI from 'openai'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { Agent } from 'undici'
import {
  type CompletionRequest,
  type CompletionResult,
  type ModelPort,
  ModelProviderError,
  type PortOptions,
  tokenUsage,
} from '../engine/index.js'
import { streamChatCompletion } from './chat-stream.js'

export interface OpenAIModelPortOptions {
  /** A whole call, streaming included, slower than this fails with ModelProviderError (timeout). */
  timeoutMs: number
}

/** The SDK insists on a key; OpenAI-compatible servers on a private network often need none. */
const NO_KEY = 'no-key-configured'

/**
 * The engine's model port: one chat completion, streamed (onToken per chunk) or not. An unstreamed one on
 * the official `openai` SDK; a streamed one on a plain undici request (chat-stream.ts: a token costs half
 * the CPU), over keep-alive connections of this port's own, as many as calls in flight. Provider failures
 * and timeouts become ModelProviderError (the run answers 502), the same for both; a cancelled run rejects
 * with the run's abort reason. No retries: a run is not replayed behind the caller's back.
 */
export function createOpenAIModelPort(options: OpenAIModelPortOptions): ModelPort & { close(): Promise<void> } {
  const clients = new Map<string, OpenAI>()
  const streams = new Agent({ keepAliveTimeout: 4_000 })
  const clientFor = (baseURL: string, apiKey: string | undefined) => {
    const key = `${baseURL}\n${apiKey ?? ''}`
    let client = clients.get(key)
    if (!client) {
      client = new OpenAI({ baseURL, apiKey: apiKey || NO_KEY, maxRetries: 0, timeout: options.timeoutMs })
      clients.set(key, client)
    }
    return client
  }

  async function complete(request: CompletionRequest, { signal }: PortOptions): Promise<CompletionResult> {
    const client = clientFor(request.baseUrl, request.apiKey)
    const timer = new AbortController()
    const timeout = setTimeout(() => timer.abort(), options.timeoutMs)
    const callSignal = AbortSignal.any([signal, timer.signal])
    const messages: ChatCompletionMessageParam[] = []
    if (request.system !== undefined) messages.push({ role: 'system', content: request.system })
    messages.push({ role: 'user', content: request.input })
    const params = {
      model: request.model,
      messages,
      temperature: request.temperature,
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    }
    try {
      if (!request.stream) {
        const completion = await client.chat.completions.create({ ...params, stream: false }, { signal: callSignal })
        const text = completion.choices[0]?.message?.content
        if (typeof text !== 'string') throw new ModelProviderError('the model provider answered without a message')
        return withUsage(text, completion.usage)
      }
      const { text, usage } = await streamChatCompletion({
        dispatcher: streams,
        baseURL: request.baseUrl,
        apiKey: request.apiKey || NO_KEY,
        body: params,
        signal: callSignal,
        timeoutMs: options.timeoutMs,
        onPiece: (piece) => request.onToken?.(piece),
      })
      if (callSignal.aborted) throw callSignal.reason
      return withUsage(text, usage)
    } catch (error) {
      if (signal.aborted) throw signal.reason
      if (timer.signal.aborted) {
        throw new ModelProviderError(`the model provider did not answer within ${options.timeoutMs} ms`, true, {
          cause: error,
        })
      }
      throw providerError(error)
    } finally {
      clearTimeout(timeout)
    }
  }

  return {
    complete,
    close: async () => {
      clients.clear()
      await streams.close()
    },
  }
}

/** The result, with the provider's usage when it reported one. */
function withUsage(text: string, reported: unknown): CompletionResult {
  const usage = tokenUsage(reported)
  return usage ? { text, usage } : { text }
}

function providerError(error: unknown): ModelProviderError {
  if (error instanceof ModelProviderError) return error
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new ModelProviderError('the model provider timed out', true, { cause: error })
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return new ModelProviderError(`the model provider cannot be reached: ${error.message}`, false, { cause: error })
  }
  if (error instanceof OpenAI.APIError) {
    return new ModelProviderError(`the model provider failed: ${error.message}`, false, { cause: error })
  }
  const reason = error instanceof Error ? error.message : String(error)
  return new ModelProviderError(`the model call failed: ${reason}`, false, { cause: error })
}
