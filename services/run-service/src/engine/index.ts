export { buildRunResponse } from './build-response.js'
export {
  ComponentFailedError,
  EngineError,
  type FailedComponent,
  FlowInvalidError,
  InvalidTweakError,
  ModelProviderError,
  RunAbortedError,
  TweakConflictError,
  UnknownOutputComponentError,
} from './errors.js'
export { type ComponentResult, type ExecuteOptions, executeRun, type RunOutcome } from './executor.js'
export { parseFlow, runnableGraph, topologicalOrder } from './flow-graph.js'
export type {
  ComponentContext,
  ComponentDefinition,
  ComponentInputs,
  ComponentOutputs,
  ComponentRegistry,
  FlowEdge,
  FlowGraph,
  FlowNode,
  GraphProblem,
  IoRole,
  ParsedFlow,
} from './graph-model.js'
export type { MessageDraft } from './messages.js'
export {
  frameResponseEvent,
  hasChatInput,
  OutputMessage,
  openAIError,
  outputMessage,
  outputTextOf,
  type ResponseEvent,
  ResponseEvents,
  ResponseObject,
  ResponsesRequest,
  responseObject,
  responseSessionId,
  responseUsage,
  runRequestOf,
  STREAM_DONE,
} from './openai-responses.js'
export {
  type CompletionRequest,
  type CompletionResult,
  type HistoryRequest,
  type MessagePort,
  type ModelDefaults,
  type ModelPort,
  PartialWriteError,
  type PortOptions,
  type RunEvent,
  type RunListener,
  type TokenUsage,
  tokenUsage,
} from './ports.js'
export { builtInComponents, createRegistry } from './registry.js'
export { OutputValue, ResultData, ResultMessage, RunRequest, RunResponse } from './run-contract.js'
export { planRun, type RunPlan } from './run-plan.js'
export { type InputType, inputReceivers, type OutputType, reportedComponents } from './selection.js'
export {
  carriedSessionId,
  type ResolvedSession,
  resolveComponentSession,
  resolveSessionId,
  runSessionId,
  type SessionCandidates,
  type SessionSource,
} from './session.js'
export { applyRequestInput, applyTweaks, type NodeOverrides } from './tweaks.js'
export type { FlowValue } from './values.js'
