import { BATCH_MAX } from '@session-runtime/schemas'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { MessageRepository } from '../../domain/repository/message-repository.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every read and mutation of messages and sessions; mutations keep the history cache up to date. */
    repository: MessageRepository
  }
}

/** The repository over the database and the history cache: the routes' only way to the data. */
async function repository(app: FastifyInstance, { config }: { config: Config }) {
  app.decorate(
    'repository',
    new MessageRepository(app.db, app.historyCache, {
      history: {
        maxEntries: config.CACHE_MAX_MESSAGES,
        maxMessageBytes: config.CACHE_MAX_MESSAGE_BYTES,
        lookupConcurrency: config.VERSION_LOOKUP_CONCURRENCY,
        onError: (err, op) => app.log.warn({ err, op }, 'history cache operation failed'),
      },
      writer: { maxInFlight: config.WRITE_CONCURRENCY, maxBatchMessages: BATCH_MAX },
    }),
  )
}

export default fp(repository, { name: 'repository', dependencies: ['database', 'history'] })
