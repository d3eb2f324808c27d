// startProcessStack with several processes of a service (`instances`): two gateways, each on its own port,
// one with an environment of its own (`instanceEnv`), one killed and restarted while the other serves.
// (Several message-stores and run-services, which the gateway reaches through URL lists, are covered by the
// scale-out tests; the settings each process gets: packages/stack/test/process-stack.test.ts.)
import { KEY_A, startProcessStack } from '@session-runtime/stack'
import t from 'tap'

const KEY_X = 'e2e-key-x-0123456789abcdef'
const stack = await startProcessStack(t, {
  instances: { gateway: 2 },
  instanceEnv: { gateway: [undefined, { API_KEYS: `tenant-x=${KEY_X}` }] },
})

const flows = (url: string, key: string) =>
  fetch(`${url}/api/v1/flows/`, { headers: { 'x-api-key': key }, signal: AbortSignal.timeout(10_000) }).then(
    (res) => res.status,
  )

t.test('two gateways on their own ports, each with its own keys', async (t) => {
  const [first, second] = stack.instances.gateway
  t.equal(stack.instances.gateway.length, 2)
  t.equal(stack.instances['message-store'].length, 1)
  t.equal(stack.services.gateway, first, 'services has the first process')
  t.same(stack.gatewayUrls, [first?.url, second?.url])
  t.equal(stack.gatewayUrl, first?.url)
  t.not(first?.port, second?.port)
  t.same([first?.index, second?.index], [0, 1])
  t.equal(await flows(stack.gatewayUrls[0] as string, KEY_A), 200)
  t.equal(await flows(stack.gatewayUrls[0] as string, KEY_X), 403, 'the first has the stack’s keys')
  t.equal(await flows(stack.gatewayUrls[1] as string, KEY_X), 200, 'the second has its own')
  t.equal(await flows(stack.gatewayUrls[1] as string, KEY_A), 403)
})

t.test('one gateway killed and restarted while the other serves', async (t) => {
  const old = stack.instances.gateway[1]
  const exit = await stack.kill('gateway', 'SIGTERM', 1)
  t.equal(exit.code, 0, 'a clean exit on SIGTERM')
  t.equal(await flows(stack.gatewayUrl, KEY_A), 200, 'the first still serves')
  await t.rejects(flows(stack.gatewayUrls[1] as string, KEY_X), 'the second does not answer')

  const restarted = await stack.restart('gateway', 1)
  t.not(restarted, old)
  t.equal(stack.instances.gateway[1], restarted)
  t.equal(restarted.port, old?.port, 'on the same port')
  t.equal(await flows(restarted.url, KEY_X), 200, 'with the same environment')
  t.equal(stack.services.gateway, stack.instances.gateway[0], 'the first untouched')
  await t.rejects(stack.kill('gateway', 'SIGKILL', 2), /no process 2 of gateway \(2 started\)/)
})
