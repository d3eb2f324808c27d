// Servers under test profiled with --cpu-prof (BENCH_CPU_PROF=1), and what the profiles say.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}

/** Where a frame's code lives: a package, a service's source, Node itself, or V8 ((garbage collector), ...). */
function area(url: string, functionName: string): string {
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1] as string
  const svc = /\/services\/([^/]+)\/src\//.exec(url)
  if (svc) return `${svc[1]} src`
  if (url.includes('/packages/')) return 'workspace packages'
  if (url.startsWith('node:')) return 'node internals'
  return url ? 'other' : functionName || '(native)'
}

/** The top self-time frames of a --cpu-prof profile (URLs shortened by `trim`), and self time by area. */
export async function topFrames(file: string, n: number, trim: RegExp): Promise<string[]> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as { nodes: ProfileNode[] }
  const byFrame = new Map<string, number>()
  const byArea = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)' || hits === 0) continue
    total += hits
    const short = url.replace(/^.*\/node_modules\//, '').replace(trim, '')
    const key = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim()
    byFrame.set(key, (byFrame.get(key) ?? 0) + hits)
    const a = area(url, functionName)
    byArea.set(a, (byArea.get(a) ?? 0) + hits)
  }
  const top = (m: Map<string, number>, k: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([what, hits]) => `${((hits / total) * 100).toFixed(1).padStart(5)}%  ${what}`)
  return [...top(byArea, 10), '--', ...top(byFrame, n)]
}

/**
 * One paragraph per folder of `dir` (a profiled process each): the top frames of its main thread's
 * profile, the biggest one (tsx's loader thread writes one too).
 */
export async function profileSummaries(dir: string, frames: number, trim: RegExp): Promise<string[]> {
  const out: string[] = []
  for (const name of (await readdir(dir)).sort()) {
    const files = await Promise.all(
      (await readdir(join(dir, name))).map(async (f) => {
        const path = join(dir, name, f)
        return { path, size: (await stat(path)).size }
      }),
    )
    const main = files.sort((a, b) => b.size - a.size)[0]
    if (!main) continue
    const top = await topFrames(main.path, frames, trim)
    out.push(`${name} (${main.path}; self time, idle excluded):\n${top.map((l) => `  ${l}`).join('\n')}`)
  }
  return out
}
