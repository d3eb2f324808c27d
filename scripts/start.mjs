#!/usr/bin/env node
// `pnpm start`: runs every service of the stack on this machine. Without
// DATABASE_URL / REDIS_URL they use embedded PGlite (files under DATA_DIR) and an
// in-process cache, so nothing else needs to be installed.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dataDir = resolve(root, process.env.DATA_DIR ?? '.data')
mkdirSync(dataDir, { recursive: true })

// The services trust each other through INTERNAL_TOKEN; made once and kept in DATA_DIR.
let internalToken = process.env.INTERNAL_TOKEN
if (!internalToken) {
  const file = join(dataDir, 'internal-token')
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 })
  internalToken = readFileSync(file, 'utf8').trim()
}

const host = process.env.HOST ?? '127.0.0.1'
const services = [
  { name: 'message-store', portVar: 'MESSAGE_STORE_PORT', port: 7862 },
  { name: 'run-service', portVar: 'RUN_SERVICE_PORT', port: 7861 },
  { name: 'gateway', portVar: 'GATEWAY_PORT', port: 7860 },
]
// The run-service reaches the message-store's internal API here; the gateway forwards to both.
const messageStorePort = process.env.MESSAGE_STORE_PORT ?? '7862'
const messageStoreUrl = process.env.MESSAGE_STORE_URL ?? `http://${host}:${messageStorePort}`
const runServiceUrl = process.env.RUN_SERVICE_URL ?? `http://${host}:${process.env.RUN_SERVICE_PORT ?? '7861'}`

const children = services.map((service) => {
  const port = process.env[service.portVar] ?? String(service.port)
  const child = spawn(process.execPath, ['--conditions=@session-runtime/source', '--import', 'tsx', 'src/server.ts'], {
    cwd: join(root, 'services', service.name),
    env: {
      ...process.env,
      HOST: host,
      [service.portVar]: port,
      DATA_DIR: dataDir,
      INTERNAL_TOKEN: internalToken,
      MESSAGE_STORE_URL: messageStoreUrl,
      RUN_SERVICE_URL: runServiceUrl,
    },
    stdio: 'inherit',
  })
  console.log(`${service.name}: http://${host}:${port}`)
  child.on('exit', (code, signal) => {
    console.log(`${service.name} exited (${signal ?? code})`)
    shutdown(code ?? 1)
  })
  return child
})

const gatewayUrl = `http://${host}:${process.env.GATEWAY_PORT ?? '7860'}`
console.log(`\nclients: ${gatewayUrl} (header or query x-api-key)`)
if (!process.env.API_KEYS) {
  console.log(
    existsSync(join(dataDir, 'gateway-keys.json'))
      ? `API key: the one printed when ${join(dataDir, 'gateway-keys.json')} was created (only its hash is kept)`
      : 'API key: the gateway creates one for tenant "default" now and prints it below, once',
  )
}
console.log(
  `storage: ${process.env.DATABASE_URL ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${dataDir}`}; ` +
    `cache: ${process.env.REDIS_URL ? 'Redis (REDIS_URL)' : 'in-process'}`,
)

let stopping = false
function shutdown(code) {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
  setTimeout(() => process.exit(code), 100).unref()
}
process.on('SIGINT', () => shutdown(0))
process.on('SIGTERM', () => shutdown(0))
