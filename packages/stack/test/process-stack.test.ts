// The settings startStack gives each process of each service: URL lists of every process of a downstream,
// a Redis Cluster instead of REDIS_URL, environment of one process over that of all; and the checks of
// `instances`. The processes themselves: tests/e2e/multi-instance-stack.test.ts.
import t from 'tap'
import { type StackPlan, serviceSettings, startStack } from '../src/process-stack.js'

const plan: StackPlan = {
  ports: { 'message-store': [7001, 7002], 'run-service': [7101, 7102], gateway: [7201, 7202] },
  schemas: { messageStore: 's_ms', runService: 's_rs' },
  redisKeyPrefix: 'p:',
  internalToken: 'token',
}

t.test('every process gets its own port and the URLs of every process of what it calls', async (t) => {
  const settings = serviceSettings({ postgresUrl: 'postgres://pg/x', redisUrl: 'redis://r:6379' }, plan)
  for (const index of [0, 1]) {
    t.match(settings('gateway', index), {
      GATEWAY_PORT: String(plan.ports.gateway[index]),
      RUN_SERVICE_URL: 'http://127.0.0.1:7101,http://127.0.0.1:7102',
      MESSAGE_STORE_URL: 'http://127.0.0.1:7001,http://127.0.0.1:7002',
    })
    t.match(settings('run-service', index), {
      RUN_SERVICE_PORT: String(plan.ports['run-service'][index]),
      MESSAGE_STORE_URL: 'http://127.0.0.1:7001,http://127.0.0.1:7002',
      DATABASE_SCHEMA: 's_rs',
    })
    t.match(settings('message-store', index), {
      MESSAGE_STORE_PORT: String(plan.ports['message-store'][index]),
      DATABASE_SCHEMA: 's_ms',
      REDIS_URL: 'redis://r:6379',
      REDIS_KEY_PREFIX: 'p:',
    })
    t.notOk('REDIS_CLUSTER_NODES' in settings('message-store', index))
  }
  const one = serviceSettings({}, { ...plan, ports: { 'message-store': [1], 'run-service': [2], gateway: [3] } })
  t.equal(one('gateway', 0).MESSAGE_STORE_URL, 'http://127.0.0.1:1', 'one process: one URL, as before')
})

t.test('a cluster instead of REDIS_URL; one process environment over every one', async (t) => {
  const settings = serviceSettings(
    {
      postgresUrl: 'postgres://pg/x',
      redisUrl: 'redis://r:6379',
      redisClusterNodes: '127.0.0.1:1,127.0.0.1:2',
      env: { all: { LOG_LEVEL: 'info' }, 'message-store': { REDIS_COMMAND_TIMEOUT_MS: '100' } },
      instanceEnv: { 'message-store': [undefined, { REDIS_CLUSTER_NODES: '127.0.0.1:9', LOG_LEVEL: 'debug' }] },
    },
    plan,
  )
  const [first, second] = [settings('message-store', 0), settings('message-store', 1)]
  t.equal(first.REDIS_CLUSTER_NODES, '127.0.0.1:1,127.0.0.1:2')
  t.equal(first.REDIS_URL, undefined, 'no REDIS_URL with a cluster')
  t.match(first, { LOG_LEVEL: 'info', REDIS_COMMAND_TIMEOUT_MS: '100' })
  t.match(second, { REDIS_CLUSTER_NODES: '127.0.0.1:9', LOG_LEVEL: 'debug', REDIS_COMMAND_TIMEOUT_MS: '100' })
  t.equal(settings('gateway', 1).LOG_LEVEL, 'info', 'the other services keep theirs')
})

t.test('instances: counts ≥ 1, and several stores or run-services only on Postgres', async (t) => {
  await t.rejects(startStack({ instances: { 'message-store': 2 } }), /2 processes of message-store need Postgres/)
  await t.rejects(startStack({ instances: { 'run-service': 3 } }), /3 processes of run-service need Postgres/)
  await t.rejects(startStack({ instances: { gateway: 0 } }), /instances of gateway: 0 is not a count ≥ 1/)
})
