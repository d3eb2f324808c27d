import type { ComponentDefinition, ComponentInputs, FlowNode } from '../graph-model.js'
import { plainMessage } from '../messages.js'
import { type FlowValue, messageValue, rawValue, toBool, toText } from '../values.js'

const NAME = '[A-Za-z_][A-Za-z0-9_]*'
/** f-string style: `{var}`; `{{` and `}}` are literal braces. */
const SINGLE = new RegExp(`\\{\\{|\\}\\}|\\{(${NAME})\\}`, 'g')
/** Mustache style (`use_double_brackets`): `{{var}}`. */
const DOUBLE = new RegExp(`\\{\\{\\s*(${NAME})\\s*\\}\\}`, 'g')

/** Fills the template's variables; each variable is an input field. Output `prompt` carries no session. */
export const prompt: ComponentDefinition = {
  type: 'Prompt',
  inputs: ['template', 'use_double_brackets', 'mode'],
  variableInputs: (node: FlowNode) => {
    const field = (name: string): FlowValue => rawValue(node.values[name])
    return promptVariables(
      toText(field('template')),
      doubleBrackets({ use_double_brackets: field('use_double_brackets'), mode: field('mode') }),
    )
  },
  outputs: ['prompt'],
  emitsMessages: false,
  readsMessages: false,
  readsMessageContentOnly: true,
  async run(ctx, inputs) {
    const text = renderPrompt(toText(inputs.template), doubleBrackets(inputs), (name) => toText(inputs[name]))
    return { prompt: messageValue(plainMessage({ flowId: ctx.flowId, text })) }
  },
}

/** The variable names of a template, in order of first appearance. */
export function promptVariables(template: string, double: boolean): string[] {
  const names = [...template.matchAll(double ? DOUBLE : SINGLE)].map((match) => match[1])
  return [...new Set(names.filter((name): name is string => name !== undefined))]
}

export function renderPrompt(template: string, double: boolean, variable: (name: string) => string): string {
  return template.replace(double ? DOUBLE : SINGLE, (whole, name: string | undefined) => {
    if (name !== undefined) return variable(name)
    return whole === '{{' ? '{' : '}'
  })
}

function doubleBrackets(inputs: ComponentInputs): boolean {
  return toBool(inputs.use_double_brackets, false) || toText(inputs.mode) === 'mustache'
}
