import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { parseApiKeys } from '../src/domain/api-keys.js'
import { PLAYGROUND_DIR } from '../src/routes/playground/index.js'

// The page's files are served without any downstream: these run with none.
const gateway = await buildApp(
  loadConfig({
    LOG_LEVEL: 'silent',
    INTERNAL_TOKEN: 'test-internal-token-0123456789',
    API_KEYS: 'a=key-a',
    RUN_SERVICE_URL: 'http://127.0.0.1:1',
    MESSAGE_STORE_URL: 'http://127.0.0.1:1',
    READY_TIMEOUT_MS: '300',
  } as NodeJS.ProcessEnv),
  { keys: parseApiKeys('a=key-a') },
)
t.teardown(() => gateway.close())

const files = readdirSync(PLAYGROUND_DIR).sort()

t.test('the page is plain sources: a shell, ES modules and one stylesheet', async (t) => {
  t.same(files, ['api.js', 'app.js', 'index.html', 'style.css'])
})

t.test('/playground/: the shell, without an API key, with a strict CSP and revalidated on every load', async (t) => {
  const res = await gateway.inject({ url: '/playground/' })
  t.equal(res.statusCode, 200, 'no key needed')
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/i)
  t.equal(res.headers['cache-control'], 'no-cache')
  t.ok(res.headers.etag, 'an ETag to revalidate with')
  const csp = String(res.headers['content-security-policy'])
  t.match(csp, /(^|; )default-src 'self'(;|$)/)
  t.match(csp, /(^|; )script-src 'self'(;|$)/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval|\*|https?:/, 'nothing inline, nothing from elsewhere')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.body, /<script type="module" src="app\.js"><\/script>/)
  t.match(res.body, /<link rel="stylesheet" href="style\.css"/)
  t.notMatch(res.body, /<script>|<script type="module">|\son[a-z]+="/i, 'no inline script or handler')

  const again = await gateway.inject({ url: '/playground/', headers: { 'if-none-match': String(res.headers.etag) } })
  t.equal(again.statusCode, 304, 'unchanged: not sent again')

  const file = await gateway.inject({ url: '/playground/index.html' })
  t.equal(file.statusCode, 200)
  t.equal(file.headers['content-security-policy'], res.headers['content-security-policy'])
  t.equal(file.headers['cache-control'], 'no-cache')
})

t.test(
  '/playground redirects to /playground/ (the relative asset URLs need the slash), keeping the query',
  async (t) => {
    const res = await gateway.inject({ url: '/playground' })
    t.equal(res.statusCode, 301)
    t.equal(res.headers.location, '/playground/')
    const withQuery = await gateway.inject({ url: '/playground?x=1' })
    t.equal(withQuery.statusCode, 301)
    t.equal(withQuery.headers.location, '/playground/?x=1')
  },
)

t.test('assets: right types, cached for an hour, no key needed', async (t) => {
  const expected: Record<string, RegExp> = {
    'app.js': /^(text|application)\/javascript/,
    'api.js': /^(text|application)\/javascript/,
    'style.css': /^text\/css/,
  }
  for (const [name, type] of Object.entries(expected)) {
    const res = await gateway.inject({ url: `/playground/${name}` })
    t.equal(res.statusCode, 200, name)
    t.match(res.headers['content-type'], type, `${name}: ${res.headers['content-type']}`)
    t.equal(res.headers['cache-control'], 'public, max-age=3600', name)
    t.ok(res.headers.etag, `${name} has an ETag`)
    t.notOk(res.headers['content-security-policy'], `${name}: the CSP belongs to the shell`)
    t.equal(res.body, readFileSync(join(PLAYGROUND_DIR, name), 'utf8'), `${name} served as is`)
  }
})

t.test('only the page’s own files: anything else under /playground/ is a 404 envelope', async (t) => {
  for (const url of ['/playground/nope.js', '/playground/../package.json', '/playground/%2e%2e/src/app.ts']) {
    const res = await gateway.inject({ url })
    t.equal(res.statusCode, 404, url)
    t.match(res.json(), { code: /NOT_FOUND/ }, url)
  }
})

t.test('no external network: no asset names an http(s) URL (no CDN, no outside fonts)', async (t) => {
  for (const name of files) {
    const text = readFileSync(join(PLAYGROUND_DIR, name), 'utf8')
    t.notMatch(text, /https?:\/\//, `${name} names no URL`)
    if (name.endsWith('.css')) t.notMatch(text, /@import|url\(/, `${name} loads no other stylesheet, image or font`)
    if (name.endsWith('.html')) {
      const refs = [...text.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1] ?? '')
      t.ok(refs.length > 0)
      for (const ref of refs) t.match(ref, /^(data:|[\w.-]+\.(js|css)$)/, `${name}: ${ref} is one of the page's files`)
    }
  }
})

t.test('the API stays behind the key; the page is not in the OpenAPI document', async (t) => {
  const api = await gateway.inject({ url: '/api/v1/flows/' })
  t.equal(api.statusCode, 401, 'the proxied API still needs a key')
  const doc = await gateway.inject({ url: '/docs/json' })
  t.equal(doc.statusCode, 200)
  const paths = Object.keys((doc.json() as { paths: Record<string, unknown> }).paths)
  t.notOk(
    paths.some((path) => path.startsWith('/playground')),
    `hidden from OpenAPI: ${paths.join(', ')}`,
  )
})
