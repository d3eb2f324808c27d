import type { ComponentResult, RunOutcome } from './executor.js'
import type { OutputValue, ResultData, ResultMessage, RunResponse } from './run-contract.js'
import type { RunPlan } from './run-plan.js'
import { type FlowValue, toText } from './values.js'

/** The non-streamed response body of spec §3; the `end` event of a streamed run carries it too. */
export function buildRunResponse(plan: RunPlan, outcome: RunOutcome): RunResponse {
  const reported = new Set(plan.reportedNodeIds)
  return {
    session_id: outcome.sessionId,
    outputs: [
      {
        inputs: { input_value: plan.inputValue ?? '' },
        outputs: outcome.results.filter((result) => reported.has(result.nodeId)).map(resultData),
      },
    ],
  }
}

function resultData(result: ComponentResult): ResultData {
  const outputs = Object.entries(result.outputs)
  return {
    component_id: result.nodeId,
    component_display_name: result.displayName,
    results: Object.fromEntries(outputs.map(([name, value]) => [name, resultValue(value)])),
    outputs: Object.fromEntries(outputs.map(([name, value]) => [name, outputValue(value)])),
    artifacts: artifacts(result),
    logs: Object.fromEntries(outputs.map(([name]) => [name, []])),
    messages: result.messages.map(
      (message): ResultMessage => ({
        message: message.text,
        sender: message.sender,
        sender_name: message.sender_name,
        session_id: message.session_id,
        stream_url: null,
        component_id: result.nodeId,
        files: message.files,
        type: 'text',
      }),
    ),
    timedelta: null,
    duration: null,
    used_frozen_result: false,
  }
}

/** `results.<output>`: the Message object, or the Data / rows / raw value. */
function resultValue(value: FlowValue): unknown {
  switch (value.kind) {
    case 'message':
      return value.message
    case 'data':
      return value.data
    case 'dataframe':
      return value.rows
    case 'raw':
      return value.value
  }
}

/** `outputs.<output>`: a Message as its text (`type: text`), Data and DataFrames as objects. */
function outputValue(value: FlowValue): OutputValue {
  if (value.kind === 'message' || value.kind === 'raw') return { message: toText(value), type: 'text' }
  return { message: resultValue(value), type: 'object' }
}

/** Langflow's artifacts of a component whose first output is a Message; `{}` otherwise. */
function artifacts(result: ComponentResult): Record<string, unknown> {
  const first = Object.values(result.outputs)[0]
  if (first?.kind !== 'message') return {}
  const { text, sender, sender_name, files } = first.message
  return { message: text, sender, sender_name, files, type: 'text' }
}
