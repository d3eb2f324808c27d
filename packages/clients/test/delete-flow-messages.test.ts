import { INTERNAL_TOKEN_HEADER, TENANT_HEADER } from '@session-runtime/schemas'
import t from 'tap'
import { MessageStoreError, MessageStoreUnavailableError } from '../src/index.js'
import { FLOW_ID, makeInput, TOKEN } from './helpers/fake-message-store.js'
import { setup } from './helpers/setup.js'

t.test('deleteFlowMessages sends DELETE /internal/flows/{id}/messages with the trusted headers', async (t) => {
  const { store, client } = await setup(t, (app, store) => {
    app.delete('/internal/flows/:flow_id/messages', async (request, reply) => {
      const tenant = request.headers[TENANT_HEADER] as string
      const { flow_id } = request.params as { flow_id: string }
      for (const [id, message] of store.stored.get(tenant) ?? []) {
        if (message.flow_id === flow_id) store.stored.get(tenant)?.delete(id)
      }
      return reply.code(204).send()
    })
  })
  await client.storeMessage('tenant-a', makeInput())
  await client.storeMessage('tenant-b', makeInput())

  const result = await client.deleteFlowMessages('tenant-a', FLOW_ID, { requestId: 'req-del' })

  t.equal(result, undefined)
  const request = store.seen.at(-1)
  t.equal(request?.method, 'DELETE')
  t.equal(request?.url, `/internal/flows/${FLOW_ID}/messages`)
  t.equal(request?.headers[INTERNAL_TOKEN_HEADER], TOKEN)
  t.equal(request?.headers[TENANT_HEADER], 'tenant-a')
  t.equal(request?.headers['content-type'], undefined, 'no body, no content-type')
  t.equal(store.stored.get('tenant-a')?.size, 0, "the tenant's flow messages are gone")
  t.equal(store.stored.get('tenant-b')?.size, 1, "another tenant's are kept")
})

t.test('deleteFlowMessages surfaces a 4xx envelope without retrying', async (t) => {
  const { store, client } = await setup(t, (app) => {
    app.delete('/internal/flows/:flow_id/messages', async (_request, reply) =>
      reply.code(422).send({ detail: 'params/flow_id must match format "uuid"', code: 'MSGSTORE_VALIDATION' }),
    )
  })
  const error = await client.deleteFlowMessages('tenant-a', 'not-a-uuid').catch((err: unknown) => err)
  t.ok(error instanceof MessageStoreError)
  t.match(error, { statusCode: 422, code: 'MSGSTORE_VALIDATION' })
  t.equal(store.seen.length, 1)
})

t.test('deleteFlowMessages retries a 503 (it is idempotent), then reports unavailable', async (t) => {
  let calls = 0
  const { store, client } = await setup(t, (app) => {
    app.delete('/internal/flows/:flow_id/messages', async (_request, reply) => {
      calls += 1
      if (calls === 1) return reply.code(503).send({ detail: 'Database unavailable', code: 'MSGSTORE_UNAVAILABLE' })
      return reply.code(204).send()
    })
  })
  await client.deleteFlowMessages('tenant-a', FLOW_ID)
  t.equal(store.seen.length, 2, 'retried once')

  const always = await setup(t, (app) => {
    app.delete('/internal/flows/:flow_id/messages', async (_request, reply) =>
      reply.code(503).send({ detail: 'Database unavailable', code: 'MSGSTORE_UNAVAILABLE' }),
    )
  })
  const error = await always.client.deleteFlowMessages('tenant-a', FLOW_ID).catch((err: unknown) => err)
  t.ok(error instanceof MessageStoreUnavailableError)
  t.equal(always.store.seen.length, 3, 'three attempts in all')
})

t.test('deleteFlowMessages refuses an empty tenant or flow id before any request', async (t) => {
  const { store, client } = await setup(t)
  await t.rejects(client.deleteFlowMessages('', FLOW_ID), TypeError)
  await t.rejects(client.deleteFlowMessages('tenant-a', ''), TypeError)
  t.equal(store.seen.length, 0)
})
