// The cache settings: which Redis setups the store understands, the errors at start for the ones it does not,
// and the one start-up log line naming the cache in use.
import { Writable } from 'node:stream'
import { testStorageEnv } from '@session-runtime/stack'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { clusterNatMap, loadConfig } from '../src/config.js'
import { backends, dropSchema, INTERNAL_TOKEN, uniqueName } from './helpers/app.js'

const base = { INTERNAL_TOKEN } as NodeJS.ProcessEnv

t.test('Redis settings the store does not understand stop it at start', async (t) => {
  for (const name of [
    'REDIS_CLUSTER',
    'REDIS_CLUSTER_URLS',
    'REDIS_SENTINELS',
    'REDIS_NODES',
    'REDIS_HOST',
    'REDIS_PASSWORD',
  ]) {
    t.throws(() => loadConfig({ ...base, [name]: 'x' }), new RegExp(`unsupported Redis setting ${name}`), name)
  }
  t.throws(
    () => loadConfig({ ...base, REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'a:7000' }),
    /REDIS_URL .* or REDIS_CLUSTER_NODES .* not both/,
  )
  t.throws(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: 'a:7000,b' }), /REDIS_CLUSTER_NODES/, 'a node with no port')
  t.throws(() => loadConfig({ ...base, REDIS_KEY_PREFIX: 'app{1}:' }), /REDIS_KEY_PREFIX/, 'braces in the prefix')
  t.throws(
    () => loadConfig({ ...base, REDIS_CLUSTER_NAT_MAP: '10.0.0.1:7000=r1:17000' }),
    /REDIS_CLUSTER_NAT_MAP .* needs REDIS_CLUSTER_NODES/,
    'a NAT map without a cluster',
  )
  for (const bad of ['10.0.0.1:7000', '10.0.0.1:7000=r1', 'a:1=b:2,', 'a:1=b:2=c:3']) {
    t.throws(
      () => loadConfig({ ...base, REDIS_CLUSTER_NODES: 'r1:7000', REDIS_CLUSTER_NAT_MAP: bad }),
      /REDIS_CLUSTER_NAT_MAP/,
      `NAT map ${bad}`,
    )
  }
})

t.test('the Redis setups it understands', async (t) => {
  t.equal(loadConfig({ ...base, REDIS_CLUSTER_NODES: 'r1:7000,r2:7001' }).REDIS_CLUSTER_NODES, 'r1:7000,r2:7001')
  t.equal(loadConfig({ ...base, REDIS_URL: 'redis://r:6379' }).REDIS_URL, 'redis://r:6379')
  const nat = loadConfig({
    ...base,
    REDIS_CLUSTER_NODES: 'r1:17000',
    REDIS_CLUSTER_NAT_MAP: '10.0.0.1:7000=r1:17000,10.0.0.2:7000=r2:17000',
  }).REDIS_CLUSTER_NAT_MAP
  t.same(clusterNatMap(nat), {
    '10.0.0.1:7000': { host: 'r1', port: 17000 },
    '10.0.0.2:7000': { host: 'r2', port: 17000 },
  })
  t.equal(clusterNatMap(undefined), undefined)
  // Kubernetes sets these for any service named redis: not a request for another setup.
  const k8s = { REDIS_SERVICE_HOST: '10.0.0.1', REDIS_SERVICE_PORT: '6379', REDIS_PORT: 'tcp://10.0.0.1:6379' }
  t.equal(loadConfig({ ...base, ...k8s }).REDIS_URL, undefined)
})

/** Builds the app with `env` and returns what it logged at start. */
async function startLog(env: Record<string, string | undefined>): Promise<string[]> {
  const schema = uniqueName('cfg')
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const config = loadConfig({ ...testStorageEnv(schema, INTERNAL_TOKEN), ...env } as NodeJS.ProcessEnv)
  const app = await buildApp(config, { logger: { level: 'info', stream } })
  try {
    await app.ready()
  } finally {
    await app.close()
    await dropSchema(schema)
  }
  return lines.map((l) => JSON.parse(l).msg as string).filter((m) => m.startsWith('history cache: '))
}

t.test('one start-up line names the cache in use', async (t) => {
  t.same(await startLog({}), ['history cache: in-process LRU of this instance'])
  t.same(await startLog({ CACHE_ENABLED: 'false' }), ['history cache: disabled'])
  t.same(await startLog({ REDIS_URL: 'redis://user:secret@127.0.0.1:1' }), ['history cache: Redis at 127.0.0.1:1'])
  t.same(await startLog({ REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' }), [
    'history cache: Redis Cluster (seeds 127.0.0.1:1,127.0.0.1:2)',
  ])
  t.comment(`storage: ${backends.postgresUrl ? 'Postgres' : 'PGlite'}`)
})
