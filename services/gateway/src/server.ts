import { serve } from '@session-runtime/service-kit'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const config = loadConfig()
await serve(await buildApp(config), {
  host: config.HOST,
  port: config.GATEWAY_PORT,
  backlog: config.LISTEN_BACKLOG,
})
