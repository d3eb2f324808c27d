/**
 * Trusted headers between services. The gateway strips them from incoming
 * requests and sets them itself; services refuse requests without a valid token.
 */
export const INTERNAL_TOKEN_HEADER = 'x-internal-token'
/** The caller's tenant, resolved by the gateway from the API key. */
export const TENANT_HEADER = 'x-tenant-id'
/** The request ID generated at the edge. */
export const REQUEST_ID_HEADER = 'x-request-id'
/** Keyset pagination: present if and only if more rows follow. */
export const NEXT_CURSOR_HEADER = 'x-next-cursor'
/**
 * The flow and the session a request concerned, as the service that answered it resolved them (a run's flow ID
 * even when it was called by endpoint name; its resolved session), percent-encoded (a session ID may hold any
 * character). Internal: the gateway reads them for its log line and does not pass them on.
 */
export const FLOW_ID_HEADER = 'x-flow-id'
export const SESSION_ID_HEADER = 'x-session-id'
