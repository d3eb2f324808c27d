import { chatInput } from './components/chat-input.js'
import { chatOutput } from './components/chat-output.js'
import { languageModel } from './components/language-model.js'
import { memory } from './components/memory.js'
import { openAIModel } from './components/openai-model.js'
import { prompt } from './components/prompt.js'
import { storeMessage } from './components/store-message.js'
import { textInput, textOutput } from './components/text-io.js'
import { typeConverter } from './components/type-converter.js'
import type { ComponentDefinition, ComponentRegistry } from './graph-model.js'

export function createRegistry(components: readonly ComponentDefinition[]): ComponentRegistry {
  return new Map(components.map((component) => [component.type, component]))
}

/** Every component the engine runs. Adding one: a file in components/ and a line here. */
export const builtInComponents: ComponentRegistry = createRegistry([
  chatInput,
  chatOutput,
  textInput,
  textOutput,
  prompt,
  memory,
  storeMessage,
  typeConverter,
  openAIModel,
  languageModel,
])
