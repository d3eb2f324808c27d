// What the browser tests share: Debian's Chromium (playwright-core) beside the real stack as processes, a
// page that may load nothing from elsewhere, and the public API with a key.
import { existsSync } from 'node:fs'
import { KEY_A, type StackTest, startProcessStack } from '@session-runtime/stack'
import { type Browser, chromium, type Page } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
/** The bound of every wait. */
export const STEP_MS = 10_000

/** Chromium, launched headless with the flags a container needs; closed at `t`'s teardown. */
export async function launchChromium(t: StackTest): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`The browser tests need Debian's Chromium at ${CHROMIUM}: apt-get install -y chromium`)
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_MS * 3,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
  t.teardown(() => browser.close())
  return browser
}

/** The stack (no model) and Chromium, started together. */
export async function startBrowserStack(t: StackTest & Parameters<typeof startProcessStack>[0]) {
  const [stack, browser] = await Promise.all([startProcessStack(t), launchChromium(t)])
  return { stack, browser }
}

export interface ApiAnswer<T> {
  status: number
  body: T
  next: string | null
}

/** The public API through the gateway at `base`, with an API key (KEY_A unless named). */
export function apiClient(base: string) {
  return async function api<T>(path: string, init: RequestInit = {}, key = KEY_A): Promise<ApiAnswer<T>> {
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: { 'x-api-key': key, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
      signal: AbortSignal.timeout(STEP_MS),
    })
    const text = await res.text()
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T, next: res.headers.get('x-next-cursor') }
  }
}

/**
 * A page whose every request outside the gateway is refused and recorded (`external`), whose errors are
 * recorded (`pageErrors`, except the browser's own lines for refusals a test causes on purpose: `expected`).
 */
export async function newRecordedPage(browser: Browser, base: string, expected = /$^/) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true })
  context.setDefaultTimeout(STEP_MS)
  const external: string[] = []
  await context.route('**/*', (route) => {
    const url = route.request().url()
    if (url.startsWith(`${base}/`) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue()
    external.push(url)
    return route.abort()
  })
  const page: Page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('console', (message) => {
    if (message.type() === 'error' && !expected.test(message.text())) pageErrors.push(message.text())
  })
  return { page, pageErrors, external }
}

/** The Playground at `base`, with `key` entered and the flow named `flowName` chosen. */
export async function openPlayground(browser: Browser, base: string, key: string, flowName: string) {
  const recorded = await newRecordedPage(browser, base)
  const { page } = recorded
  await page.goto(`${base}/playground/`)
  await page.fill('#api-key', key)
  await page.press('#api-key', 'Enter')
  await page.locator('#flow-select:not([disabled])').waitFor()
  await page.selectOption('#flow-select', { label: flowName })
  return recorded
}
