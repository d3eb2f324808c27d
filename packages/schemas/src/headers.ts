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
