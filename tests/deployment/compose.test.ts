// Checks docker-compose.yml and the Dockerfile against the code: the services they name exist, the
// variables they set are ones the services read (and .env.example documents), the ports agree with
// the defaults in each config.ts, and the stack only starts a service once what it needs is healthy.
// The message-store and the run-service run as two instances each (`message-store-1`, `message-store-2`, …:
// one definition shared through a YAML anchor), listed in their callers' comma-separated URLs.
// No Docker engine is needed: the files are read as files.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const read = (path: string) => readFileSync(join(root, path), 'utf8')

type Dict = Record<string, unknown>
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v)

const composeText = read('docker-compose.yml')
// merge keys (`<<: *anchor`) as compose reads them
const compose = parse(composeText, { merge: true }) as Dict
const services = (isDict(compose.services) ? compose.services : {}) as Record<string, Dict>
const dockerfile = read('Dockerfile')
const envExample = new Set(
  read('.env.example')
    .split('\n')
    .map((line) => /^([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined),
)

/** `KEY: value` maps and `- KEY=value` lists alike. */
function pairs(block: unknown): Record<string, string> {
  if (Array.isArray(block)) {
    return Object.fromEntries(
      block.map((item) => {
        const [key = '', ...value] = String(item).split('=')
        return [key, value.join('=')]
      }),
    )
  }
  if (isDict(block)) return Object.fromEntries(Object.entries(block).map(([k, v]) => [k, v == null ? '' : String(v)]))
  return {}
}

/** What compose makes of `${VAR:-default}` when VAR is unset. */
const withDefaults = (value: string) =>
  value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_all, _name, fallback: string | undefined) => fallback ?? '')

/** The compose services built from the repository's Dockerfile, with the SERVICE they build. */
const built = Object.entries(services)
  .filter(([, spec]) => {
    const build = spec.build
    if (typeof build === 'string') return resolve(root, build) === root
    if (!isDict(build)) return false
    return (
      resolve(root, String(build.context ?? '.')) === root && String(build.dockerfile ?? 'Dockerfile') === 'Dockerfile'
    )
  })
  .map(([name, spec]) => ({
    name,
    spec,
    service: pairs((spec.build as Dict).args).SERVICE ?? '',
    env: pairs(spec.environment),
  }))

/** How many instances of each service compose runs. */
const INSTANCES: Record<string, number> = { 'message-store': 2, 'run-service': 2, gateway: 1 }
/** The compose services that run `service` (its instances). */
const instancesOf = (service: string) => built.filter((b) => b.service === service)
/** A URL variable's entries: one base URL or a comma-separated list, one per instance. */
const entries = (value: string) => withDefaults(value).split(',')

/** The port variable a service reads: message-store -> MESSAGE_STORE_PORT. */
const portVar = (service: string) => `${service.toUpperCase().replace(/-/g, '_')}_PORT`
const configPath = (service: string) => `services/${service}/src/config.ts`
const hasConfig = (service: string) => existsSync(join(root, configPath(service)))
const portOf = (b: (typeof built)[number]) => withDefaults(b.env[portVar(b.service)] ?? '')
/** The settings a service's config.ts declares (its TypeBox schema, shared fragments included). */
async function settingsOf(service: string): Promise<Record<string, { default?: unknown }>> {
  const { ConfigSchema } = (await import(join(root, configPath(service)))) as {
    ConfigSchema: { properties: Record<string, { default?: unknown }> }
  }
  return ConfigSchema.properties
}

t.test('compose builds message-store, run-service and gateway from the Dockerfile', async (t) => {
  t.same(built.map((b) => b.name).sort(), [
    'gateway',
    'message-store-1',
    'message-store-2',
    'run-service-1',
    'run-service-2',
  ])
  for (const b of built) {
    t.equal(b.service, b.name.replace(/-\d+$/, ''), `${b.name}: build arg SERVICE names the service it runs`)
  }
})

t.test('two instances each of the message-store and the run-service, from one definition', async (t) => {
  for (const [service, count] of Object.entries(INSTANCES)) {
    const instances = instancesOf(service)
    t.equal(instances.length, count, `${service}: ${count} instance(s)`)
    if (count < 2) continue
    const [first, ...others] = instances
    for (const other of others) t.same(other.spec, first?.spec, `${other.name}: the same definition as ${first?.name}`)
    // one anchor, so that a change reaches every instance (not copies that drift apart)
    t.match(composeText, new RegExp(`^x-${service}: &${service}$`, 'm'), `${service}: defined once as x-${service}`)
    for (const b of instances) {
      t.match(composeText, new RegExp(`^  ${b.name}: \\*${service}$`, 'm'), `${b.name}: is *${service}`)
    }
  }
})

t.test('every SERVICE build arg is a workspace service', async (t) => {
  for (const b of built) {
    const manifest = `services/${b.service}/package.json`
    if (b.service === 'gateway' && !existsSync(join(root, 'services/gateway'))) {
      t.comment(`services/gateway does not exist yet: not checking ${manifest}`)
      continue
    }
    t.ok(existsSync(join(root, manifest)), `${b.name}: ${manifest} exists`)
    t.ok(existsSync(join(root, `services/${b.service}/src/server.ts`)), `${b.name}: it has a src/server.ts to build`)
  }
})

t.test('every variable compose sets is read by the service and documented in .env.example', async (t) => {
  for (const b of built) {
    if (!hasConfig(b.service)) {
      t.comment(`${configPath(b.service)} does not exist yet: not checking ${b.name}'s variables or port default`)
      continue
    }
    const settings = await settingsOf(b.service)
    t.ok(Object.keys(b.env).length > 0, `${b.name}: sets environment variables`)
    for (const name of Object.keys(b.env)) {
      t.ok(settings[name], `${b.name}: ${configPath(b.service)} reads ${name}`)
      t.ok(envExample.has(name), `${b.name}: .env.example lists ${name}`)
    }
  }
})

t.test('the ports in compose are the defaults of each config.ts', async (t) => {
  for (const b of built) {
    const name = portVar(b.service)
    const set = Object.keys(b.env).filter((key) => key.endsWith('_PORT'))
    t.same(set, [name], `${b.name}: sets exactly its own port variable ${name}`)
    t.match(portOf(b), /^\d+$/, `${b.name}: ${name} is a number`)
    if (!hasConfig(b.service)) continue // said above
    const fallback = (await settingsOf(b.service))[name]?.default?.toString()
    t.ok(fallback, `${b.name}: ${configPath(b.service)} gives ${name} a default`)
    t.equal(portOf(b), fallback, `${b.name}: ${name} is the default of config.ts`)
  }
})

t.test('the service URLs point at the right compose service and port', async (t) => {
  const serviceNames = [...new Set(built.map((b) => b.service))]
  let urls = 0
  for (const b of built) {
    for (const [key, value] of Object.entries(b.env)) {
      const target = /^([A-Z_]+)_URL$/.exec(key)?.[1]
      const service = target && serviceNames.find((s) => portVar(s) === `${target}_PORT`)
      if (!service) continue
      urls++
      const instances = instancesOf(service)
      const hosts = entries(value).map((entry) => {
        const url = new URL(entry)
        const instance = instances.find((i) => i.name === url.hostname)
        t.ok(instance, `${b.name}: ${key} entry ${entry} names an instance of ${service}`)
        if (instance) t.equal(url.port, portOf(instance), `${b.name}: ${key} entry ${entry} uses its port`)
        t.equal(url.pathname, '/', `${b.name}: ${key} entry ${entry} is a base URL`)
        return url.hostname
      })
      t.same(
        [...hosts].sort(),
        instances.map((i) => i.name).sort(),
        `${b.name}: ${key} lists every instance of ${service} once`,
      )
    }
  }
  t.equal(
    urls,
    4,
    'MESSAGE_STORE_URL (run-service-1, run-service-2, gateway) and RUN_SERVICE_URL (gateway) are checked',
  )
  for (const b of built) {
    const database = b.env.DATABASE_URL
    if (database) t.equal(new URL(withDefaults(database)).hostname, 'postgres', `${b.name}: DATABASE_URL -> postgres`)
    const redis = b.env.REDIS_URL
    if (redis) t.equal(new URL(withDefaults(redis)).hostname, 'redis', `${b.name}: REDIS_URL -> redis`)
  }
  for (const b of instancesOf('message-store')) t.ok(b.env.REDIS_URL, `${b.name}: gets REDIS_URL (one cache shared)`)
  t.equal(
    new Set(built.filter((b) => b.service !== 'gateway').map((b) => b.env.DATABASE_URL)).size,
    1,
    'every instance of both services uses the one Postgres',
  )
})

t.test('every service shares one INTERNAL_TOKEN and listens on all interfaces', async (t) => {
  const tokens = new Set(built.map((b) => b.env.INTERNAL_TOKEN))
  t.equal(tokens.size, 1, 'one INTERNAL_TOKEN for all services')
  const [token = ''] = tokens
  t.match(token, /^\$\{INTERNAL_TOKEN(:?-[^}]*)?\}$/, 'INTERNAL_TOKEN comes from the environment')
  t.ok(withDefaults(token).length >= 16, 'its local default is at least 16 characters (the services require it)')
  for (const b of built) t.equal(b.env.HOST, '0.0.0.0', `${b.name}: HOST=0.0.0.0`)
})

t.test('every service has a healthcheck', async (t) => {
  t.ok(Object.keys(services).length >= 7, 'postgres, redis and the five service instances')
  for (const [name, spec] of Object.entries(services)) {
    const check = isDict(spec.healthcheck) ? spec.healthcheck : {}
    const test = Array.isArray(check.test) ? check.test.map(String) : [String(check.test ?? '')]
    t.notOk(check.disable, `${name}: healthcheck not disabled`)
    t.ok(test.join(' ').trim() && test[0] !== 'NONE', `${name}: has a healthcheck`)
  }
  t.match(JSON.stringify(services.postgres?.healthcheck), /pg_isready/, 'postgres: pg_isready')
  t.match(JSON.stringify(services.redis?.healthcheck), /redis-cli.*ping/, 'redis: redis-cli ping')
  t.match(
    JSON.stringify(services.redis?.command),
    /"--maxmemory-policy","allkeys-lru"/,
    'redis evicts least recently used keys when full: a cache, safe under eviction (docs/message-store.md)',
  )
  for (const b of built) {
    const test = ((b.spec.healthcheck as Dict | undefined)?.test ?? []) as string[]
    t.match(test.join(' '), `127.0.0.1:${portOf(b)}/health`, `${b.name}: the healthcheck asks its own /health`)
  }
})

t.test('only the gateway publishes a port, 7860', async (t) => {
  for (const [name, spec] of Object.entries(services)) {
    if (name === 'gateway') continue
    t.notOk(spec.ports, `${name}: publishes no port`)
    t.not(spec.network_mode, 'host', `${name}: not on the host network`)
  }
  const gateway = built.find((b) => b.name === 'gateway')
  const published = services.gateway?.ports
  t.same(Array.isArray(published) ? published.map(String) : published, ['7860:7860'], 'gateway: 7860:7860')
  t.equal(gateway && portOf(gateway), '7860', 'gateway: GATEWAY_PORT is the published container port')
})

t.test('depends_on waits for healthy services', async (t) => {
  let edges = 0
  for (const [name, spec] of Object.entries(services)) {
    if (spec.depends_on === undefined) continue
    t.ok(isDict(spec.depends_on), `${name}: depends_on is the long form (a list cannot name a condition)`)
    for (const [dependency, how] of Object.entries(isDict(spec.depends_on) ? spec.depends_on : {})) {
      edges++
      t.ok(services[dependency], `${name}: depends on an existing service ${dependency}`)
      t.equal(isDict(how) && how.condition, 'service_healthy', `${name}: waits for ${dependency} to be healthy`)
    }
  }
  t.ok(edges > 0, 'there are dependencies to check')
  // Whatever a service's URLs name, it waits for.
  for (const b of built) {
    const wants = Object.entries(b.env)
      .filter(([key]) => key.endsWith('_URL'))
      .flatMap(([, value]) => entries(value).map((entry) => new URL(entry).hostname))
      .filter((host) => services[host])
    const deps = isDict(b.spec.depends_on) ? Object.keys(b.spec.depends_on) : []
    for (const host of wants) t.ok(deps.includes(host), `${b.name}: depends_on ${host}`)
  }
})

t.test('the Dockerfile runs as a non-root user with a healthcheck', async (t) => {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n')
  const stages = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0)
  t.ok(stages.length >= 2, 'multi-stage')
  for (const i of stages) t.match(lines[i], /^FROM\s+node:20-slim\b/i, `stage on node:20-slim: ${lines[i]}`)
  const runtime = lines.slice(stages.at(-1))
  const users = runtime.filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1])
  t.ok(users.length > 0, 'the runtime stage sets USER')
  t.notOk(
    users.some((u) => /^(root|0)(:|$)/.test(u ?? '')),
    'no USER of the runtime stage is root',
  )
  t.equal(users.at(-1), 'node', 'the service runs as node')
  const healthcheck = runtime.find((l) => /^HEALTHCHECK\s/i.test(l)) ?? ''
  t.match(healthcheck, /\sCMD\s+node\s/, 'the runtime stage has a HEALTHCHECK that uses node')
  t.match(healthcheck, /\/health/, 'it asks /health')
  t.match(runtime.join('\n'), /^ARG\s+SERVICE\b/m, 'the runtime stage takes the SERVICE build arg')
  const cmd = runtime.filter((l) => /^CMD\s/i.test(l)).at(-1) ?? ''
  t.match(cmd, /services\/\$\{?SERVICE\}?\/dist\/server\.js/, 'its CMD runs services/$SERVICE/dist/server.js')
  const pnpm = JSON.parse(read('package.json')).packageManager as string
  t.match(dockerfile, `npm install -g ${pnpm}`, `installs ${pnpm}, the packageManager of package.json`)
  t.match(dockerfile, /pnpm install --frozen-lockfile/, 'installs with the lockfile')
  t.match(dockerfile, /RUN pnpm build/, 'builds')
})

t.test('.dockerignore keeps local state out of the build context', async (t) => {
  const ignored = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
  for (const entry of ['node_modules', 'dist', '.data', '.tap', '.git', '.profiles']) {
    t.ok(
      ignored.some((l) => l === entry || l === `**/${entry}`),
      `.dockerignore: ${entry}`,
    )
  }
})
