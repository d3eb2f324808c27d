import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import { Pool } from 'undici'
import { serveWhenTold } from './forked-server.js'

/**
 * The floor of the stack's shape, run by runs.ts as three processes like the services: what three bare Fastify
 * hops and one INSERT cost, with none of the services' work (no key check, flow, session rule, validation,
 * history, metrics or logs).
 * - `front` (in the gateway's place) passes the run's body on to `middle` through an undici pool and answers
 *   with middle's answer;
 * - `middle` (in the run-service's place) parses the body, sends the turn (the question and a reply, two
 *   messages) to `store` through an undici pool, and answers the recorded run response;
 * - `store` (in the message-store's place) inserts the two messages in one INSERT (autocommit) into a table
 *   with a primary key and a (session, ts) index, and answers the rows' ids.
 * Same Node, Fastify, undici and pg, same machine: the gap between it and the stack is what the services' own
 * work costs per run.
 */

export type FloorStart =
  | { role: 'front' | 'middle'; upstream: string; runBody: string }
  | { role: 'store'; databaseUrl: string; table: string }

const json = 'application/json; charset=utf-8'

serveWhenTold(async (msg: FloorStart): Promise<FastifyInstance> => {
  const app = Fastify({ logger: { level: 'warn' } })
  if (msg.role === 'store') {
    const pool = new pg.Pool({ connectionString: msg.databaseUrl, max: 16 })
    const table = `"${msg.table}"`
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (
      id uuid PRIMARY KEY, session_id text NOT NULL, sender text NOT NULL, text text NOT NULL,
      ts timestamptz NOT NULL DEFAULT clock_timestamp())`)
    await pool.query(`CREATE INDEX IF NOT EXISTS "${msg.table}_session" ON ${table} (session_id, ts)`)
    const insert = `INSERT INTO ${table} (id, session_id, sender, text)
      SELECT id, session_id, sender, text FROM jsonb_to_recordset($1::jsonb)
        AS m(id uuid, session_id text, sender text, text text)
      RETURNING id`
    // the body goes to Postgres as it came (a JSON array of messages)
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body))
    app.post('/write', async (request) => {
      const { rows } = await pool.query({ name: 'floor-insert', text: insert, values: [request.body] })
      return { ids: rows.map((row: { id: string }) => row.id) }
    })
    app.addHook('onClose', async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {})
      await pool.end()
    })
    return app
  }
  const upstream = new Pool(msg.upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 })
  app.addHook('onClose', () => upstream.close())
  if (msg.role === 'front') {
    // the body is passed on as it came
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body))
    app.post('/api/v1/run/:id', async (request, reply) => {
      const answer = await upstream.request({
        method: 'POST',
        path: request.url,
        headers: { 'content-type': 'application/json' },
        body: request.body as string,
      })
      const body = await answer.body.text()
      return reply.code(answer.statusCode).type(json).send(body)
    })
    return app
  }
  app.post('/api/v1/run/:id', async (request, reply) => {
    const { input_value, session_id } = request.body as { input_value?: string; session_id?: string }
    const session = session_id ?? 'default'
    const turn = [
      { id: randomUUID(), session_id: session, sender: 'User', text: String(input_value ?? '') },
      { id: randomUUID(), session_id: session, sender: 'Machine', text: String(input_value ?? '') },
    ]
    const answer = await upstream.request({
      method: 'POST',
      path: '/write',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(turn),
    })
    await answer.body.dump()
    if (answer.statusCode !== 200) return reply.code(503).send({ detail: 'store failed' })
    return reply.type(json).send(msg.runBody)
  })
  return app
})
