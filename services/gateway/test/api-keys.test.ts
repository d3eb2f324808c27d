import { readFileSync } from 'node:fs'
import t from 'tap'
import { KEYS_FILE, loadApiKeys, parseApiKeys, tenantOf, withoutApiKeyParam } from '../src/domain/api-keys.js'

t.test('API_KEYS: tenant=key pairs', async (t) => {
  const keys = parseApiKeys(' a=k1 , b=k2,')
  t.equal(tenantOf(keys, 'k1'), 'a')
  t.equal(tenantOf(keys, 'k2'), 'b')
  t.equal(tenantOf(keys, 'k3'), undefined)
  t.equal(tenantOf(keys, ''), undefined)
  t.throws(() => parseApiKeys('a=k1,nokey'), /entry 2 is not tenant=key/)
  t.throws(() => parseApiKeys('=k1'))
})

t.test('no API_KEYS: a default key is created once, only its hash stored', async (t) => {
  const dir = t.testdir()
  const first = loadApiKeys('', dir)
  t.type(first.createdKey, 'string')
  const key = first.createdKey as string
  const stored = readFileSync(`${dir}/${KEYS_FILE}`, 'utf8')
  t.notOk(stored.includes(key), 'the key itself is not stored')
  const second = loadApiKeys('', dir)
  t.equal(second.createdKey, undefined, 'not created again')
  t.equal(tenantOf(second.keys, key), 'default')
  t.equal(tenantOf(second.keys, `${key}x`), undefined)
  t.equal(loadApiKeys('x=y', dir).keys[0]?.tenant, 'x', 'API_KEYS wins over the file')
})

t.test('the query key is removed from URLs', async (t) => {
  t.equal(withoutApiKeyParam('/a?x-api-key=s'), '/a')
  t.equal(withoutApiKeyParam('/a?stream=true&x-api-key=s'), '/a?stream=true')
  t.equal(withoutApiKeyParam('/a?stream=true'), '/a?stream=true')
  t.equal(withoutApiKeyParam('/a'), '/a')
})
