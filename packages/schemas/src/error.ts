import { type Static, Type } from '@sinclair/typebox'

/** The one error envelope every service answers with (spec §8). */
export const ErrorEnvelope = Type.Object(
  {
    detail: Type.String({ description: 'Human-readable message.' }),
    code: Type.String({ description: 'Stable machine code, e.g. MSGSTORE_NOT_FOUND.' }),
  },
  { $id: 'ErrorEnvelope' },
)
export type ErrorEnvelope = Static<typeof ErrorEnvelope>
