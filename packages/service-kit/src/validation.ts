import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Request validation: bodies are never coerced ("session_id": 42 is a 422, not
 * "42") and unknown body fields are refused; query strings and params are coerced
 * as usual and unknown query parameters are dropped.
 */
async function validation(app: FastifyInstance) {
  const base = { allErrors: false, useDefaults: true, strict: false } as const
  const body = addFormats.default(new Ajv.default({ ...base, coerceTypes: false, removeAdditional: false }))
  const other = addFormats.default(new Ajv.default({ ...base, coerceTypes: 'array', removeAdditional: true }))
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? body : other).compile(schema))
}

export default fp(validation, { name: 'validation' })
