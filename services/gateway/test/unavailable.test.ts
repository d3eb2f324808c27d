import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'

t.test('a downstream that is down: 503 naming it, and /ready says so', async (t) => {
  const gateway = await buildApp(
    loadConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN: 'test-internal-token-0123456789',
      API_KEYS: 'a=key-a',
      RUN_SERVICE_URL: 'http://127.0.0.1:1',
      MESSAGE_STORE_URL: 'http://127.0.0.1:1',
      READY_TIMEOUT_MS: '500',
    } as NodeJS.ProcessEnv),
    { keys: parseApiKeys('a=key-a') },
  )
  t.teardown(() => gateway.close())
  const res = await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': 'key-a' } })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { detail: 'The run-service is unavailable', code: 'GATEWAY_UPSTREAM_UNAVAILABLE' })
  const monitor = await gateway.inject({ url: '/api/v1/monitor/messages', headers: { 'x-api-key': 'key-a' } })
  t.equal((monitor.json() as { detail: string }).detail, 'The message-store is unavailable')
  const ready = await gateway.inject({ url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), {
    status: 'unavailable',
    services: { 'run-service': { status: 'down' }, 'message-store': { status: 'down' } },
  })
})

t.test('no API_KEYS and DATA_DIR memory://: a key is created and printed once', async (t) => {
  const printed: string[] = []
  const gateway = await buildApp(
    loadConfig({ LOG_LEVEL: 'silent', INTERNAL_TOKEN: 'test-internal-token-0123456789', DATA_DIR: 'memory://' }),
    { printCreatedKey: (line) => printed.push(line) },
  )
  t.teardown(() => gateway.close())
  t.equal(printed.length, 1)
  const key = /: (sk-\S+)$/.exec(printed[0] ?? '')?.[1]
  t.type(key, 'string')
  const res = await gateway.inject({ url: '/api/v1/flows/', headers: { 'x-api-key': 'sk-wrong' } })
  t.equal(res.statusCode, 403)
  const ok = await gateway.inject({ url: `/api/v1/flows/?x-api-key=${key}` })
  t.equal(ok.statusCode, 503, 'accepted (and then no run-service behind)')
})
