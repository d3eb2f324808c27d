import { type FlowValue, toText } from './values.js'

/** Where a component's session ID came from, in the order of spec §2. */
export type SessionSource = 'request' | 'edge' | 'tweak' | 'stored' | 'inherited' | 'flow'

/** The candidates of spec §2 for one component; an absent or empty value counts as not given. */
export interface SessionCandidates {
  /** 1. The request's `session_id`. */
  request?: string | null
  /** 2. The component's own setting: a value wired into `session_id` by an edge, … */
  edge?: string
  /** … else this run's tweak, … */
  tweak?: string
  /** … else the value stored in the flow. */
  stored?: string
  /** 3. The session carried by the Message on the component's main input. */
  inherited?: string
  /** 4. The flow's ID. */
  flowId: string
}

export interface ResolvedSession {
  sessionId: string
  source: SessionSource
}

/** Spec §2: the first non-empty candidate, else the flow ID. */
export function resolveSessionId(candidates: SessionCandidates): ResolvedSession {
  const ordered: [SessionSource, string | null | undefined][] = [
    ['request', candidates.request],
    ['edge', candidates.edge],
    ['tweak', candidates.tweak],
    ['stored', candidates.stored],
    ['inherited', candidates.inherited],
  ]
  for (const [source, value] of ordered) {
    if (typeof value === 'string' && value !== '') return { sessionId: value, source }
  }
  return { sessionId: candidates.flowId, source: 'flow' }
}

/** The session a value carries: a Message's, if it has one. Plain text and data carry none. */
export function carriedSessionId(value: FlowValue | undefined): string | undefined {
  return value?.kind === 'message' && value.message.session_id !== '' ? value.message.session_id : undefined
}

/** What the executor knows about one component when it resolves its session. */
export interface ComponentSessionFacts {
  requestSessionId: string | undefined
  flowId: string
  /** Whether the component has a `session_id` field of its own. */
  hasSessionField: boolean
  /** The value arriving by edge into `session_id`, if one is wired. */
  wiredSessionId: FlowValue | undefined
  /** This run's tweak of `session_id`, if any. */
  tweakedSessionId: unknown
  /** The `session_id` stored in the flow. */
  storedSessionId: unknown
  /** The value on the component's main input, if it has one. */
  mainInput: FlowValue | undefined
}

/** Spec §2 for one component of a run. */
export function resolveComponentSession(facts: ComponentSessionFacts): ResolvedSession {
  const own = (value: FlowValue | undefined) => (facts.hasSessionField && value ? toText(value) : undefined)
  return resolveSessionId({
    request: facts.requestSessionId,
    edge: own(facts.wiredSessionId),
    tweak: own(facts.tweakedSessionId === undefined ? undefined : { kind: 'raw', value: facts.tweakedSessionId }),
    stored: own(facts.storedSessionId === undefined ? undefined : { kind: 'raw', value: facts.storedSessionId }),
    inherited: carriedSessionId(facts.mainInput),
    flowId: facts.flowId,
  })
}

/**
 * The run's top-level `session_id` (spec §2): the request's if given; else the session of the
 * first ChatInput in the flow file's order; else the flow ID.
 */
export function runSessionId(
  requestSessionId: string | null | undefined,
  firstChatInputSessionId: string | undefined,
  flowId: string,
): string {
  if (typeof requestSessionId === 'string' && requestSessionId !== '') return requestSessionId
  return firstChatInputSessionId ?? flowId
}
