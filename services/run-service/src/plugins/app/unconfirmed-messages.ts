import { MessageStoreUnavailableError } from '@session-runtime/clients'
import { Counter } from '@session-runtime/service-kit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { unconfirmedMessageRepository } from '../../domain/unconfirmed-message-repository.js'
import { type SettleOutcome, UnconfirmedMessages } from '../../domain/unconfirmed-messages.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Message writes of failed runs that were not confirmed; settled as failed in the message-store. */
    unconfirmedMessages: UnconfirmedMessages
  }
}

/**
 * Records the message writes that a failed run could not confirm and settles them with the message-store
 * every `intervalMs` while any wait (docs/reliability.md). Counted in
 * `unconfirmed_messages_total{outcome="recorded"|"settled"|"dropped"}`. Stops its rounds on close.
 */
async function unconfirmedMessages(app: FastifyInstance, opts: { intervalMs: number }) {
  const counter = new Counter({
    name: 'unconfirmed_messages_total',
    help: 'Message writes of failed runs that were not confirmed: recorded, then settled as failed (or dropped)',
    labelNames: ['outcome'] as const,
    registers: [app.metricsRegistry],
  })
  for (const outcome of ['recorded', 'settled', 'dropped'] as const) counter.inc({ outcome }, 0)
  const log = app.log.child({ component: 'unconfirmed-messages' })
  const unconfirmed = new UnconfirmedMessages({
    outbox: unconfirmedMessageRepository(app.db),
    store: { storeFailed: (tenant, messages) => app.messageStore.storeFailedMessages(tenant, messages) },
    isTransient: (err) => err instanceof MessageStoreUnavailableError,
    log,
    onCount: (outcome: SettleOutcome, count: number) => counter.inc({ outcome }, count),
  })
  unconfirmed.start(opts.intervalMs)
  app.addHook('onClose', async () => {
    await unconfirmed.stop()
    if (unconfirmed.unsavedCount > 0) {
      log.error({ count: unconfirmed.unsavedCount }, 'unconfirmed message writes lost at shutdown (not settled)')
    }
  })
  app.decorate('unconfirmedMessages', unconfirmed)
}

export default fp(unconfirmedMessages, {
  name: 'unconfirmed-messages',
  dependencies: ['database', 'message-store-client', 'run-service-metrics'],
})
