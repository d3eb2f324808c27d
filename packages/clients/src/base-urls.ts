/**
 * A comma-separated list of http(s) base URLs (`http://a:7862,http://b:7862`), as the services' `*_URL`
 * settings take them: one URL per instance of the service behind. Spaces around entries are ignored.
 * Throws a TypeError naming `name` and the bad entry when an entry is not an http(s) URL, when the list
 * is empty, or when the entries differ in their path (every instance is reached under the same path).
 */
export function parseBaseUrls(value: string, name = 'url'): string[] {
  const entries = value.split(',').map((entry) => entry.trim())
  if (entries.every((entry) => entry === '')) throw new TypeError(`${name}: no URL given`)
  const urls = entries.map((entry, index) => {
    const where = `${name}: entry ${index + 1} of ${entries.length}`
    let url: URL
    try {
      url = new URL(entry)
    } catch {
      throw new TypeError(`${where} (${JSON.stringify(entry)}) is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`${where} (${JSON.stringify(entry)}) is not an http(s) URL`)
    }
    if (url.search || url.hash) throw new TypeError(`${where} (${JSON.stringify(entry)}) has a query or fragment`)
    return url
  })
  const paths = new Set(urls.map((url) => url.pathname.replace(/\/+$/, '')))
  if (paths.size > 1) throw new TypeError(`${name}: every entry must have the same path, got ${[...paths].join(', ')}`)
  const origins = urls.map((url) => url.origin)
  const twice = origins.find((origin, index) => origins.indexOf(origin) !== index)
  if (twice) throw new TypeError(`${name}: ${twice} is listed twice`)
  return urls.map((url) => url.href.replace(/\/+$/, ''))
}
