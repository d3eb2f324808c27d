// A bounded load of runs through the gateway, for the fault tests (tests/faults): a few workers run a flow
// again and again, each run in its own new session, and record every outcome. Afterwards `verifyRuns`
// reads every run's session back through the monitor API and checks that what was acknowledged is stored,
// exactly once, and that no failed run left a reply that looks complete.

/** One stored message, as the monitor API answers it. */
export interface StoredMessage {
  id: string
  flow_id: string
  session_id: string
  sender: string
  sender_name: string
  text: string
  timestamp: string
  error: boolean
  category: string
  properties: { state?: string } & Record<string, unknown>
}

export interface RunOutcome {
  index: number
  sessionId: string
  input: string
  stream: boolean
  /** HTTP status, or undefined when no answer came (refused, reset, timed out). */
  status: number | undefined
  /** A 2xx whose run completed: JSON 200, or a stream whose last event is `end`. */
  acknowledged: boolean
  /** The reply's message (id and text), from the response of an acknowledged run. */
  reply?: { id: string; text: string }
  /** The error envelope's code (JSON), `stream-error` (an `error` event), or the network error. */
  failure?: string
  /** When the outcome was recorded (Date.now()). */
  at: number
}

export interface LoadOptions {
  gatewayUrl: string
  key: string
  flowId: string
  /** Workers running at once; default 8. */
  concurrency?: number
  /** Bound of the runs started in all; default 1,000. */
  maxRuns?: number
  /** Every `streamEvery`-th run is streamed (`?stream=true`); 0: none. */
  streamEvery?: number
  /** Session IDs are `${prefix}-${index}`. */
  prefix: string
  /** Bound of one run (milliseconds). */
  runTimeoutMs?: number
}

export interface Load {
  readonly outcomes: readonly RunOutcome[]
  /** Resolves once `done(outcomes)` holds; rejects after `timeoutMs` naming `what`. */
  until(what: string, done: (outcomes: readonly RunOutcome[]) => boolean, timeoutMs?: number): Promise<void>
  /** Starts no more runs; resolves with every outcome once the runs in flight have ended. */
  stop(): Promise<RunOutcome[]>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface RunBody {
  outputs?: { outputs?: { results?: { message?: { id?: unknown; text?: unknown } } }[] }[]
}

function replyOf(body: RunBody | undefined): { id: string; text: string } | undefined {
  const message = body?.outputs?.[0]?.outputs?.[0]?.results?.message
  if (typeof message?.id !== 'string' || typeof message.text !== 'string') return undefined
  return { id: message.id, text: message.text }
}

/** One run through the gateway; never throws. */
export async function runOnce(
  opts: Pick<LoadOptions, 'gatewayUrl' | 'key' | 'flowId' | 'runTimeoutMs'>,
  index: number,
  sessionId: string,
  stream: boolean,
): Promise<RunOutcome> {
  const input = `message ${index} of ${sessionId}`
  const outcome: RunOutcome = {
    index,
    sessionId,
    input,
    stream,
    status: undefined,
    acknowledged: false,
    at: 0,
  }
  try {
    const res = await fetch(`${opts.gatewayUrl}/api/v1/run/${opts.flowId}${stream ? '?stream=true' : ''}`, {
      method: 'POST',
      headers: { 'x-api-key': opts.key, 'content-type': 'application/json' },
      body: JSON.stringify({ input_value: input, session_id: sessionId }),
      signal: AbortSignal.timeout(opts.runTimeoutMs ?? 30_000),
    })
    outcome.status = res.status
    const text = await res.text()
    if (stream && res.status === 200) {
      const events = text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as { event: string; data: { result?: RunBody } })
      const last = events.at(-1)
      if (last?.event === 'end') {
        outcome.reply = replyOf(last.data.result)
        outcome.acknowledged = outcome.reply !== undefined
        if (!outcome.acknowledged) outcome.failure = 'end event without a reply'
      } else outcome.failure = last?.event === 'error' ? 'stream-error' : `stream ended after ${last?.event}`
    } else if (res.status >= 200 && res.status < 300) {
      outcome.reply = replyOf(JSON.parse(text) as RunBody)
      outcome.acknowledged = outcome.reply !== undefined
      if (!outcome.acknowledged) outcome.failure = `2xx without a reply: ${text.slice(0, 200)}`
    } else {
      let code: unknown
      try {
        code = (JSON.parse(text) as { code?: unknown }).code
      } catch {}
      outcome.failure = typeof code === 'string' ? code : `no envelope: ${text.slice(0, 200)}`
    }
  } catch (error) {
    // A stream cut mid-way (the body read fails) keeps its 200 status: it was never acknowledged.
    const cause = (error as { cause?: { code?: string } }).cause?.code
    outcome.failure = `network: ${(error as Error).message}${cause ? ` (${cause})` : ''}`
  }
  outcome.at = Date.now()
  return outcome
}

/** Starts the load at once; bounded by `maxRuns` and each run's timeout. */
export function startLoad(options: LoadOptions): Load {
  const opts = { concurrency: 8, maxRuns: 1_000, ...options }
  const outcomes: RunOutcome[] = []
  let started = 0
  let stopped = false
  const worker = async () => {
    while (!stopped && started < opts.maxRuns) {
      const index = started++
      const stream = (opts.streamEvery ?? 0) > 0 && index % (opts.streamEvery ?? 1) === 0
      const outcome = await runOnce(opts, index, `${opts.prefix}-${index}`, stream)
      outcomes.push(outcome)
      // A refused connection fails at once: don't spin through the whole budget while a service is down.
      if (outcome.status === undefined) await sleep(50)
    }
  }
  const workers = Array.from({ length: opts.concurrency }, worker)
  return {
    outcomes,
    async until(what, done, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      while (!done(outcomes)) {
        if (Date.now() > deadline) throw new Error(`load: not ${what} within ${timeoutMs} ms (${summary(outcomes)})`)
        if (started >= opts.maxRuns && outcomes.length === started) {
          throw new Error(`load: all ${opts.maxRuns} runs ended before ${what} (${summary(outcomes)})`)
        }
        await sleep(20)
      }
    },
    async stop() {
      stopped = true
      await Promise.all(workers)
      return outcomes
    },
  }
}

/** `status/failure: count` of a list of outcomes, for messages and reports. */
export function summary(outcomes: readonly RunOutcome[]): string {
  const counts = new Map<string, number>()
  for (const outcome of outcomes) {
    const key = outcome.acknowledged ? `${outcome.status} ok` : `${outcome.status ?? '-'} ${outcome.failure}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts].map(([key, count]) => `${key}: ${count}`).join(', ')
}

export interface Verification {
  acknowledged: number
  failed: number
  /** Messages read back for acknowledged runs, all checked. */
  messagesVerified: number
  /** Problems found (empty: every check passed). */
  problems: string[]
  /** Failed runs whose session holds their user message as a normal message (stored before the failure). */
  failedWithUserMessage: number
  /**
   * Messages of failed runs that are marked failed (`error` true, `properties.state` "partial"): writes the
   * run-service could not confirm (the answer was lost), settled once the message-store answered again.
   */
  settledFailed: number
  /** Of those, replies (Machine, not an error message): written as the store failed, then marked failed. */
  settledReplies: number
}

/** Every message of one session of the flow, through the gateway's monitor API. */
export async function sessionMessages(
  gatewayUrl: string,
  key: string,
  flowId: string,
  sessionId: string,
): Promise<StoredMessage[]> {
  const query = new URLSearchParams({ flow_id: flowId, session_id: sessionId, limit: '100' })
  const res = await fetch(`${gatewayUrl}/api/v1/monitor/messages?${query}`, {
    headers: { 'x-api-key': key },
    signal: AbortSignal.timeout(10_000),
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`monitor ${sessionId}: ${res.status} ${text}`)
  return JSON.parse(text) as StoredMessage[]
}

/**
 * For a flow that stores the user's input and one reply (Memory Echo): every acknowledged run's session
 * holds exactly [its input (User), its reply (Machine, same id and text)], no message ID appears twice, and
 * no failed run's session holds a reply that is not marked as an error.
 */
export async function verifyRuns(
  gatewayUrl: string,
  key: string,
  flowId: string,
  outcomes: readonly RunOutcome[],
): Promise<Verification> {
  const result: Verification = {
    acknowledged: 0,
    failed: 0,
    messagesVerified: 0,
    problems: [],
    failedWithUserMessage: 0,
    settledFailed: 0,
    settledReplies: 0,
  }
  const seenIds = new Map<string, string>()
  for (const outcome of outcomes) {
    const stored = await sessionMessages(gatewayUrl, key, flowId, outcome.sessionId)
    for (const message of stored) {
      const other = seenIds.get(message.id)
      if (other) result.problems.push(`message ${message.id} stored twice (${other}, ${outcome.sessionId})`)
      seenIds.set(message.id, outcome.sessionId)
    }
    if (outcome.acknowledged) {
      result.acknowledged++
      const shape = stored.map((m) => `${m.sender}:${m.error ? 'error' : 'ok'}`).join(',')
      const [user, reply] = stored
      if (
        stored.length !== 2 ||
        user?.sender !== 'User' ||
        user.text !== outcome.input ||
        reply?.sender !== 'Machine' ||
        reply.error ||
        reply.id !== outcome.reply?.id ||
        reply.text !== outcome.reply?.text
      ) {
        result.problems.push(`acknowledged run ${outcome.sessionId} (status ${outcome.status}) has [${shape}]`)
      } else result.messagesVerified += stored.length
    } else {
      result.failed++
      if (stored.some((m) => m.sender === 'User' && m.text === outcome.input && !m.error)) {
        result.failedWithUserMessage++
      }
      const settled = stored.filter((m) => m.error && m.properties.state === 'partial')
      result.settledFailed += settled.length
      result.settledReplies += settled.filter((m) => m.sender === 'Machine' && m.category !== 'error').length
      const complete = stored.filter((m) => m.sender === 'Machine' && !m.error && m.category !== 'error')
      if (complete.length > 0) {
        result.problems.push(
          `failed run ${outcome.sessionId} (${outcome.status ?? '-'} ${outcome.failure}) has a reply stored as complete`,
        )
      }
      const strangers = stored.filter((m) => m.sender === 'User' && m.text !== outcome.input)
      if (strangers.length > 0) result.problems.push(`failed run ${outcome.sessionId} has foreign messages`)
    }
  }
  return result
}

/**
 * `verifyRuns`, again every 500 ms until it finds no problem or `timeoutMs` passes (then its last answer):
 * writes that the run-service could not confirm are settled as failed in its next rounds, once the store
 * answers again, so a failed run may show a complete reply for a moment after a fault.
 */
export async function verifyRunsSettled(
  gatewayUrl: string,
  key: string,
  flowId: string,
  outcomes: readonly RunOutcome[],
  timeoutMs = 30_000,
): Promise<Verification> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const verified = await verifyRuns(gatewayUrl, key, flowId, outcomes)
    if (verified.problems.length === 0 || Date.now() >= deadline) return verified
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** The tenant's copy of the built-in Memory Echo example (a no-model flow: input stored, reply stored). */
export async function memoryEchoId(gatewayUrl: string, key: string): Promise<string> {
  const res = await fetch(`${gatewayUrl}/api/v1/flows/`, {
    headers: { 'x-api-key': key },
    signal: AbortSignal.timeout(10_000),
  })
  const flows = (await res.json()) as { id: string; endpoint_name: string | null }[]
  const id = flows.find((flow) => flow.endpoint_name === 'memory-echo')?.id
  if (!id) throw new Error(`no Memory Echo flow: ${JSON.stringify(flows)}`)
  return id
}
