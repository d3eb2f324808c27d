import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type LogLine, logInto } from '@session-runtime/stack'
import t from 'tap'
import { KEY_A, startGatedModel, startStack } from './helpers/stack.js'

const fixtures = process.env.FIXTURES_DIR ?? new URL('../../../../shared/fixtures', import.meta.url).pathname

async function until(condition: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('a caller that goes away mid-run is logged as such, not as a gateway failure', async (t) => {
  const lines: LogLine[] = []
  const model = await startGatedModel(t) // never released while the caller waits
  t.teardown(() => model.release())
  const { gateway, seen } = await startStack(t, {
    modelUrl: model.url,
    env: { LOG_LEVEL: 'info' },
    gateway: { logStream: logInto(lines) },
  })
  const imported = await gateway.inject({
    method: 'POST',
    url: '/api/v1/flows/',
    headers: { 'x-api-key': KEY_A },
    payload: JSON.parse(readFileSync(`${fixtures}/langflow-basic-prompting.json`, 'utf8')),
  })
  const flowId = (imported.json() as { id: string }).id
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const { port } = gateway.server.address() as AddressInfo

  const request = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: `/api/v1/run/${flowId}`,
    headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' },
  })
  request.on('error', () => {}) // the abort below
  request.end(JSON.stringify({ input_value: 'hello?', session_id: 'leaving' }))
  await until(() => seen.some((h) => String(h.url).startsWith('/api/v1/run/')), 'the run to reach the run-service')
  request.destroy()

  const cutOff = (line: LogLine) => line.msg === 'request completed' && line.url === `/api/v1/run/${flowId}`
  await until(() => lines.some(cutOff), 'the gateway to notice')
  t.match(
    lines.filter(cutOff),
    [{ level: 30, clientClosed: true, statusCode: 499, method: 'POST', tenant: 'tenant-a', durationMs: Number }],
    "the request's one line says the client closed it before any answer (499)",
  )
  // the forwarded request was cancelled, so the run-service sees its caller go away too
  await until(
    () =>
      lines.some(
        (line) =>
          line.msg === 'response errored' &&
          (line.err as { message?: string } | undefined)?.message === 'the client closed the connection',
      ),
    'the forwarded request to be cancelled',
  )
  t.same(
    lines.filter((line) => line.level >= 50).map((line) => line.msg),
    [],
    'nothing logged at error level',
  )
})
