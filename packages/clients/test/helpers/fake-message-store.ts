import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { INTERNAL_TOKEN_HEADER, type Message, type MessageInput, TENANT_HEADER } from '@session-runtime/schemas'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'

export const TOKEN = 'internal-test-token'
export const FLOW_ID = '6f1c1c9e-93b4-4a8e-9a51-3c1f0e7f4b2a'

export interface SeenRequest {
  method: string
  /** Raw request target, query string included, exactly as received. */
  url: string
  headers: FastifyRequest['headers']
  /** The query string as the server parsed it. */
  query: Record<string, string>
  body: unknown
}

export interface FakeStore {
  app: FastifyInstance
  url: string
  port: number
  /** Every request that reached a route, in arrival order. */
  seen: SeenRequest[]
  /** TCP connections the server accepted. */
  connections: () => number
  /** Stored messages by tenant, then id. */
  stored: Map<string, Map<string, Message>>
  close: () => Promise<void>
}

export type Routes = (app: FastifyInstance, store: FakeStore) => void

export function makeInput(overrides: Partial<MessageInput> = {}): MessageInput {
  return {
    id: randomUUID(),
    flow_id: FLOW_ID,
    session_id: 'session-1',
    sender: 'User',
    sender_name: 'User',
    text: 'hello',
    ...overrides,
  }
}

export function toMessage(input: MessageInput): Message {
  return {
    files: [],
    error: false,
    edit: false,
    properties: {},
    category: 'message',
    content_blocks: [],
    context_id: '',
    ...input,
    timestamp: new Date().toISOString(),
  }
}

/**
 * The message-store's internal routes, faked: token and tenant checks, idempotent
 * writes on `id`, history and readiness. `routes` may register extra routes or
 * replace these (register them first: the defaults are skipped for taken paths).
 */
export async function startFakeStore(routes?: Routes, port = 0): Promise<FakeStore> {
  const app = Fastify({ forceCloseConnections: true })
  let connections = 0
  app.server.on('connection', () => {
    connections += 1
  })
  const store: FakeStore = {
    app,
    url: '',
    port: 0,
    seen: [],
    connections: () => connections,
    stored: new Map(),
    close: () => app.close(),
  }

  app.addHook('onRequest', async (request, reply) => {
    store.seen.push({
      method: request.method,
      url: request.url,
      headers: request.headers,
      query: request.query as Record<string, string>,
      body: undefined,
    })
    if (request.headers[INTERNAL_TOKEN_HEADER] !== TOKEN) {
      return reply.code(401).send({ detail: 'bad internal token', code: 'MSGSTORE_UNAUTHORIZED' })
    }
  })
  app.addHook('preHandler', async (request) => {
    const last = store.seen.at(-1)
    if (last) {
      last.query = request.query as Record<string, string>
      last.body = request.body
    }
  })

  routes?.(app, store)
  const free = (method: 'GET' | 'POST', url: string) => !app.hasRoute({ method, url })

  const tenantOf = (request: FastifyRequest, reply: FastifyReply): Map<string, Message> | null => {
    const tenant = request.headers[TENANT_HEADER]
    if (typeof tenant !== 'string' || tenant === '') {
      reply.code(400).send({ detail: 'missing tenant', code: 'MSGSTORE_NO_TENANT' })
      return null
    }
    let messages = store.stored.get(tenant)
    if (!messages) {
      messages = new Map()
      store.stored.set(tenant, messages)
    }
    return messages
  }
  const save = (messages: Map<string, Message>, input: MessageInput): [Message, boolean] => {
    const existing = messages.get(input.id)
    if (existing) return [existing, false]
    const message = toMessage(input)
    messages.set(input.id, message)
    return [message, true]
  }

  if (free('POST', '/internal/messages')) {
    app.post('/internal/messages', async (request, reply) => {
      const messages = tenantOf(request, reply)
      if (!messages) return reply
      const [message, created] = save(messages, request.body as MessageInput)
      return reply.code(created ? 201 : 200).send(message)
    })
  }
  if (free('POST', '/internal/messages/batch')) {
    app.post('/internal/messages/batch', async (request, reply) => {
      const messages = tenantOf(request, reply)
      if (!messages) return reply
      const { messages: inputs } = request.body as { messages: MessageInput[] }
      return reply.code(201).send(inputs.map((input) => save(messages, input)[0]))
    })
  }
  if (free('GET', '/internal/history')) {
    app.get('/internal/history', async (request, reply) => {
      const messages = tenantOf(request, reply)
      if (!messages) return reply
      const query = request.query as Record<string, string>
      const limit = Number(query.limit ?? 100)
      const matching = [...messages.values()].filter(
        (message) => message.flow_id === query.flow_id && message.session_id === query.session_id && !message.error,
      )
      const latest = matching.slice(-limit)
      return query.order === 'DESC' ? latest.reverse() : latest
    })
  }
  if (free('GET', '/ready')) {
    app.get('/ready', async () => ({ status: 'ok', postgres: 'up', redis: 'disabled' }))
  }

  await app.listen({ host: '127.0.0.1', port })
  store.port = (app.server.address() as AddressInfo).port
  store.url = `http://127.0.0.1:${store.port}`
  return store
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const app = Fastify()
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  await app.close()
  return port
}
