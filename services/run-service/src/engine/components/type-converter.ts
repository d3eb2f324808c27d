import type { ComponentDefinition, ComponentOutputs } from '../graph-model.js'
import { dataFrameValue, dataValue, messageValue, toData, toDataFrame, toMessage, toText } from '../values.js'

/** Converts between Message, Data and DataFrame; only the selected `output_type`'s output is produced. */
export const typeConverter: ComponentDefinition = {
  type: 'TypeConverterComponent',
  inputs: ['input_data', 'output_type'],
  outputs: ['message_output', 'data_output', 'dataframe_output'],
  emitsMessages: false,
  readsMessages: false,
  mainInput: 'input_data',
  async run(ctx, inputs): Promise<ComponentOutputs> {
    const input = inputs.input_data
    switch (toText(inputs.output_type) || 'Message') {
      case 'Message':
        return { message_output: messageValue(toMessage(input, ctx.flowId)) }
      case 'Data':
        return { data_output: dataValue(toData(input)) }
      case 'DataFrame':
        return { dataframe_output: dataFrameValue(toDataFrame(input)) }
      default:
        throw new Error(`output_type must be Message, Data or DataFrame, not ${toText(inputs.output_type)}`)
    }
  },
}
