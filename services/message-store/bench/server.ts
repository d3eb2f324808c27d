import Fastify from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

/**
 * The server side of the benchmark, run by run.ts in a child process (so the
 * load generator and the server each get a core). Talks over the IPC channel:
 *
 * - `{ type: 'start', mode: 'baseline', body }`: a bare Fastify route answering
 *   GET /internal/history with the pre-serialized `body`;
 * - `{ type: 'start', mode: 'store', env }`: the real message-store built from `env`;
 * - `{ type: 'stats' }`: the history service's hit/miss counters;
 * - `{ type: 'stop' }`: closes and exits (which writes a --cpu-prof profile).
 */

export type ServerRequest =
  | { type: 'start'; mode: 'baseline'; body: string; logLevel: string }
  | { type: 'start'; mode: 'store'; env: Record<string, string | undefined> }
  | { type: 'stats' }
  | { type: 'stop' }

export type ServerReply =
  | { type: 'ready'; port: number; database: string; cache: string }
  | { type: 'stats'; hits: number; misses: number }
  | { type: 'error'; message: string }

interface Running {
  listen(opts: { host: string; port: number }): Promise<string>
  close(): Promise<unknown>
  server: { address(): unknown }
}

let app: Running | undefined
let counters = () => ({ hits: 0, misses: 0 })

const send = (reply: ServerReply) =>
  new Promise<void>((resolve) => {
    process.send?.(reply, undefined, {}, () => resolve())
  })

async function start(msg: Extract<ServerRequest, { type: 'start' }>) {
  let database = 'none'
  let cache = 'none'
  if (msg.mode === 'baseline') {
    const body = msg.body
    const fastify = Fastify({ logger: { level: msg.logLevel } })
    // Same path, same content type and the same way of sending a ready JSON string as the store.
    fastify.get('/internal/history', (_request, reply) =>
      reply
        .code(200)
        .type('application/json; charset=utf-8')
        .send(body as never),
    )
    app = fastify
  } else {
    const store = await buildApp(loadConfig(msg.env as NodeJS.ProcessEnv))
    await store.ready()
    database = store.db.kind
    cache = store.historyCache?.kind ?? 'disabled'
    const historyCache = store.historyCache
    if (historyCache) {
      // Redis connects in the background: wait until the cache is trusted.
      const deadline = Date.now() + 5000
      while (historyCache.status() !== 'up') {
        if (Date.now() > deadline) throw new Error(`the ${historyCache.kind} history cache did not come up`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    counters = () => ({ hits: store.repository.stats().hits, misses: store.repository.stats().misses })
    app = store
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address() as { port: number }
  await send({ type: 'ready', port: address.port, database, cache })
}

process.on('message', (msg: ServerRequest) => {
  void (async () => {
    try {
      if (msg.type === 'start') await start(msg)
      else if (msg.type === 'stats') await send({ type: 'stats', ...counters() })
      else if (msg.type === 'stop') {
        await app?.close()
        process.exit(0)
      }
    } catch (err) {
      await send({ type: 'error', message: (err as Error).stack ?? String(err) })
      process.exit(1)
    }
  })()
})

// The parent went away: do not linger.
process.on('disconnect', () => process.exit(0))
