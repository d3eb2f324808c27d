import type { TSchema } from '@sinclair/typebox'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import t from 'tap'
import { MessageInput, MessagesQuery } from '../src/index.js'

// The services validate with Ajv (as Fastify does): check the schemas the same way.
const ajv = addFormats.default(new Ajv.default({ useDefaults: true, strict: false }))
const Value = {
  Check: (schema: TSchema, value: unknown) => ajv.validate(schema, structuredClone(value)),
  Default: (schema: TSchema, value: Record<string, unknown>) => {
    const copy = structuredClone(value)
    ajv.validate(schema, copy)
    return copy
  },
}

t.test('a message input refuses unknown fields and wrong types', async (t) => {
  const valid = {
    id: '6f1c2a4e-1c2b-4d8e-9f00-0123456789ab',
    flow_id: '6f1c2a4e-1c2b-4d8e-9f00-0123456789ac',
    session_id: 's',
    sender: 'User',
    sender_name: 'User',
    text: 'hi',
  }
  t.ok(Value.Check(MessageInput, valid))
  t.notOk(Value.Check(MessageInput, { ...valid, session_id: 42 }))
  t.notOk(Value.Check(MessageInput, { ...valid, surprise: true }))
})

t.test('monitor queries default and bound limit and order_by', async (t) => {
  const query = Value.Default(MessagesQuery, {}) as Record<string, unknown>
  t.equal(query.limit, 100)
  t.equal(query.order_by, 'timestamp')
  t.equal(query.order, 'ASC')
  t.notOk(Value.Check(MessagesQuery, { ...query, limit: 1001 }))
  t.notOk(Value.Check(MessagesQuery, { ...query, limit: 0 }))
  t.notOk(Value.Check(MessagesQuery, { ...query, order_by: 'text' }))
})
