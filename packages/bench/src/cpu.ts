// Where the cores went during a run: CPU time of the machine and of each process, from /proc (Linux).
import { readdir, readFile } from 'node:fs/promises'
import os from 'node:os'

export interface Snapshot {
  busy: number
  total: number
  /** pid → [command, user + system ticks, system ticks] */
  procs: Map<number, [string, number, number]>
}

/** CPU time (jiffies) of the whole machine and of each process, from /proc (Linux); undefined elsewhere. */
export async function cpuSnapshot(): Promise<Snapshot | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
      .split(/\s+/)
      .slice(1)
      .map(Number)
    const busy = user + nice + system + irq + softirq + steal
    const procs = new Map<number, [string, number, number]>()
    for (const dir of await readdir('/proc')) {
      if (!/^\d+$/.test(dir)) continue
      const text = await readFile(`/proc/${dir}/stat`, 'utf8').catch(() => '')
      const close = text.lastIndexOf(')')
      if (close < 0) continue
      const fields = text.slice(close + 2).split(' ')
      const [utime, stime] = [Number(fields[11]), Number(fields[12])]
      procs.set(Number(dir), [text.slice(text.indexOf('(') + 1, close), utime + stime, stime])
    }
    return { busy, total: busy + idle + iowait, procs }
  } catch {
    return undefined
  }
}

/** Parent pid of a process, from /proc/<pid>/stat. */
export async function parentOf(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  const close = text.lastIndexOf(')')
  return close < 0 ? undefined : Number(text.slice(close + 2).split(' ')[1])
}

/**
 * Between two snapshots: `used` sums the ticks of the processes `match` picks (those that ran in both or
 * started since), `toCores` turns ticks into cores (1 = one core busy all along).
 */
export function cpuDelta(a: Snapshot, b: Snapshot) {
  const used = (match: (pid: number, comm: string) => boolean) => {
    let sum = 0
    // a process that started since counts all its ticks (a Postgres backend opened during the run)
    for (const [pid, [comm, ticks]] of b.procs) if (match(pid, comm)) sum += ticks - (a.procs.get(pid)?.[1] ?? 0)
    return sum
  }
  const toCores = (jiffies: number) => (jiffies / (b.total - a.total)) * os.availableParallelism()
  return { used, toCores }
}

/**
 * Other processes on the cores (a test run, a build) lower the numbers: waits (up to `seconds`) until the
 * machine uses less than a quarter of a core, sampling a second at a time. `say.waiting` is told the first
 * busy sample, `say.stillBusy` the last one when time is up (with whether `waiting` was told).
 */
export async function waitUntilQuiet(
  seconds: number,
  say: { waiting(busy: number): void; stillBusy(busy: number, waited: boolean): void },
): Promise<void> {
  const deadline = Date.now() + seconds * 1000
  let said = false
  for (;;) {
    const a = await cpuSnapshot()
    await new Promise((r) => setTimeout(r, 1000))
    const b = await cpuSnapshot()
    if (!a || !b) return
    const busy = ((b.busy - a.busy) / (b.total - a.total)) * os.availableParallelism()
    if (busy < 0.25) return
    if (Date.now() > deadline) {
      say.stillBusy(busy, said)
      return
    }
    if (!said) say.waiting(busy)
    said = true
  }
}
