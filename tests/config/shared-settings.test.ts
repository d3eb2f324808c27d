// The settings every service shares are declared once (service-kit's ServiceSettings, db's DatabaseSettings)
// and spread into each service's config.ts: same defaults and the same validation in all three.
import t from 'tap'
import { loadConfig as loadGatewayConfig } from '../../services/gateway/src/config.js'
import { loadConfig as loadMessageStoreConfig } from '../../services/message-store/src/config.js'
import { loadConfig as loadRunServiceConfig } from '../../services/run-service/src/config.js'

const INTERNAL_TOKEN = 'shared-settings-token-0123456789'
type Loader = (env: NodeJS.ProcessEnv) => Record<string, unknown>
const services: Array<[string, Loader, string, number]> = [
  ['gateway', loadGatewayConfig, 'GATEWAY_PORT', 7860],
  ['run-service', loadRunServiceConfig, 'RUN_SERVICE_PORT', 7861],
  ['message-store', loadMessageStoreConfig, 'MESSAGE_STORE_PORT', 7862],
]
const withDatabase = services.filter(([name]) => name !== 'gateway')
const env = (more: Record<string, string> = {}) => ({ INTERNAL_TOKEN, ...more }) as NodeJS.ProcessEnv

t.test('the shared settings have the same defaults in every service', async (t) => {
  for (const [name, load, portVar, port] of services) {
    const config = load(env())
    t.match(
      config,
      {
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        INTERNAL_TOKEN,
        DATA_DIR: '.data',
        LISTEN_BACKLOG: 4096,
        [portVar]: port,
      },
      name,
    )
  }
  for (const [name, load] of withDatabase) {
    const config = load(env())
    t.match(
      config,
      { DATABASE_SCHEMA: 'public', DATABASE_POOL_MAX: 10, DATABASE_STATEMENT_TIMEOUT_MS: 10_000 },
      `${name}: database defaults`,
    )
    t.equal(config.DATABASE_URL, undefined, `${name}: no DATABASE_URL, embedded PGlite`)
  }
  t.notOk('DATABASE_URL' in loadGatewayConfig(env({ DATABASE_URL: 'postgres://x@h/db' })), 'the gateway has none')
})

t.test('the shared settings are validated the same way in every service, naming the variable', async (t) => {
  for (const [name, load, portVar] of services) {
    t.throws(() => load({} as NodeJS.ProcessEnv), /INTERNAL_TOKEN/, `${name}: INTERNAL_TOKEN is required`)
    t.throws(() => load(env({ INTERNAL_TOKEN: 'short' })), /INTERNAL_TOKEN/, `${name}: 16 characters at least`)
    t.throws(() => load(env({ LOG_LEVEL: 'loud' })), /LOG_LEVEL/, `${name}: LOG_LEVEL is a pino level`)
    t.throws(() => load(env({ [portVar]: '70000' })), new RegExp(portVar), `${name}: a port is at most 65535`)
    t.throws(() => load(env({ LISTEN_BACKLOG: '0' })), /LISTEN_BACKLOG/, `${name}: a backlog of one at least`)
    t.equal(load(env({ LOG_LEVEL: 'silent', [portVar]: '0' }))[portVar], 0, `${name}: port 0 (any free port)`)
  }
  for (const [name, load] of withDatabase) {
    t.throws(() => load(env({ DATABASE_SCHEMA: 'Bad-Schema' })), /DATABASE_SCHEMA/, `${name}: schema name`)
    t.throws(() => load(env({ DATABASE_POOL_MAX: '0' })), /DATABASE_POOL_MAX/, `${name}: pool of one at least`)
    t.throws(() => load(env({ DATABASE_URL: '' })), /DATABASE_URL/, `${name}: DATABASE_URL not empty`)
    t.throws(
      () => load(env({ DATABASE_STATEMENT_TIMEOUT_MS: '10' })),
      /DATABASE_STATEMENT_TIMEOUT_MS/,
      `${name}: statement timeout of 100 ms at least`,
    )
  }
})
