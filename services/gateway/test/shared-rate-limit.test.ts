import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { DEFAULT_REDIS_URL, deleteRedisKeys, testBackends } from '@session-runtime/stack'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'

const KEYS = 'a=key-a-0123456789,b=key-b-0123456789'
const REDIS_URL = testBackends().redisUrl ?? DEFAULT_REDIS_URL

/** A small real server standing in for the run-service: the limit is the gateway's alone. */
async function startUpstream(t: Test) {
  const app = Fastify()
  app.get('/api/v1/flows/', async () => [])
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

async function gateway(t: Test, env: Record<string, string>) {
  const app = await buildApp(
    loadConfig({
      LOG_LEVEL: 'silent',
      INTERNAL_TOKEN: 'test-internal-token-0123456789',
      API_KEYS: KEYS,
      ...env,
    } as NodeJS.ProcessEnv),
    { keys: parseApiKeys(KEYS) },
  )
  t.teardown(() => app.close())
  return app
}

const flows = (key: string) => ({ method: 'GET' as const, url: '/api/v1/flows/', headers: { 'x-api-key': key } })

t.test("two gateways on one Redis share each key's limit", async (t) => {
  const upstream = await startUpstream(t)
  const prefix = `gw-rl-test-${process.pid}-${randomBytes(4).toString('hex')}:`
  t.teardown(() => deleteRedisKeys(REDIS_URL, prefix))
  const env = {
    RUN_SERVICE_URL: upstream,
    MESSAGE_STORE_URL: upstream,
    RATE_LIMIT_MAX: '5',
    RATE_LIMIT_WINDOW_MS: '60000',
    REDIS_URL,
    RATE_LIMIT_REDIS_PREFIX: prefix,
  }
  const one = await gateway(t, env)
  const two = await gateway(t, env)
  const codes = []
  for (let i = 0; i < 8; i++) codes.push((await (i % 2 ? two : one).inject(flows('key-a-0123456789'))).statusCode)
  t.same(codes, [200, 200, 200, 200, 200, 429, 429, 429], '5 in all, whichever gateway took them')
  const limited = await two.inject(flows('key-a-0123456789'))
  t.same(limited.json(), {
    detail: 'Rate limit exceeded: 5 requests per 60 s for this API key',
    code: 'GATEWAY_RATE_LIMITED',
  })
  t.equal((await one.inject(flows('key-b-0123456789'))).statusCode, 200, 'another key has its own budget')

  // without Redis, each gateway counts alone: the same 8 requests pass
  const alone = { ...env, REDIS_URL: '' }
  const three = await gateway(t, alone)
  const four = await gateway(t, alone)
  const local = []
  for (let i = 0; i < 8; i++) local.push((await (i % 2 ? four : three).inject(flows('key-a-0123456789'))).statusCode)
  t.same(local, [200, 200, 200, 200, 200, 200, 200, 200])
})

t.test('Redis down: requests pass uncounted, never a 500', async (t) => {
  const upstream = await startUpstream(t)
  const app = await gateway(t, {
    RUN_SERVICE_URL: upstream,
    MESSAGE_STORE_URL: upstream,
    RATE_LIMIT_MAX: '2',
    REDIS_URL: 'redis://127.0.0.1:1',
    RATE_LIMIT_REDIS_TIMEOUT_MS: '100',
  })
  const codes = []
  for (let i = 0; i < 4; i++) codes.push((await app.inject(flows('key-a-0123456789'))).statusCode)
  t.same(codes, [200, 200, 200, 200])
})
