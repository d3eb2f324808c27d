import { Message, SessionId, SessionMetadataPatch } from '@session-runtime/schemas'
import { type Static, type TSchema, Type } from '@sinclair/typebox'

const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]))

/**
 * `POST /api/v1/run/{flow}` body (spec §3). Every field is optional; `null` means the default.
 * `session_id: ""` counts as absent.
 */
export const RunRequest = Type.Object(
  {
    input_value: nullable(Type.String()),
    input_type: nullable(Type.Union([Type.Literal('chat'), Type.Literal('text'), Type.Literal('any')])),
    output_type: nullable(
      Type.Union([Type.Literal('chat'), Type.Literal('text'), Type.Literal('any'), Type.Literal('debug')]),
    ),
    output_component: nullable(Type.String()),
    tweaks: nullable(Type.Record(Type.String(), Type.Unknown())),
    session_id: nullable(Type.Union([Type.Literal(''), SessionId])),
    /**
     * Not Langflow's: merged into the metadata of every session the run stores messages in (null removes a
     * key), by the same statement that stores the run's first message there.
     */
    session_metadata: nullable(SessionMetadataPatch),
    /**
     * Not Langflow's (LangGraph's name): what a run does when another run is in flight on its session.
     * `enqueue` (default): it waits, runs of a session execute one after another in arrival order; `reject`:
     * it is refused with a 409 and stores nothing.
     */
    multitask_strategy: nullable(Type.Union([Type.Literal('enqueue'), Type.Literal('reject')])),
  },
  { $id: 'RunRequest' },
)
export type RunRequest = Static<typeof RunRequest>

/** One message a component emitted, as Langflow lists it in `ResultData.messages`. */
export const ResultMessage = Type.Object({
  message: Type.String(),
  sender: Type.String(),
  sender_name: Type.String(),
  session_id: Type.String(),
  stream_url: Type.Null(),
  component_id: Type.String(),
  files: Type.Array(Type.String()),
  type: Type.String(),
})
export type ResultMessage = Static<typeof ResultMessage>

export const OutputValue = Type.Object({
  message: Type.Unknown({ description: 'The text, or the Data / rows' }),
  type: Type.Union([Type.Literal('text'), Type.Literal('message'), Type.Literal('object')]),
})
export type OutputValue = Static<typeof OutputValue>

/** One reported component (spec §3). */
export const ResultData = Type.Object({
  component_id: Type.String(),
  component_display_name: Type.String(),
  results: Type.Record(Type.String(), Type.Union([Message, Type.Unknown()])),
  outputs: Type.Record(Type.String(), OutputValue),
  artifacts: Type.Record(Type.String(), Type.Unknown()),
  logs: Type.Record(Type.String(), Type.Array(Type.Unknown())),
  messages: Type.Array(ResultMessage),
  timedelta: Type.Null(),
  duration: Type.Null(),
  used_frozen_result: Type.Boolean(),
})
export type ResultData = Static<typeof ResultData>

/** Response 200 of a non-streamed run (spec §3). */
export const RunResponse = Type.Object(
  {
    session_id: Type.String(),
    outputs: Type.Array(
      Type.Object({
        inputs: Type.Object({ input_value: Type.String() }),
        outputs: Type.Array(ResultData),
      }),
    ),
  },
  { $id: 'RunResponse' },
)
export type RunResponse = Static<typeof RunResponse>
