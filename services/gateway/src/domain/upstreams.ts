/** A service behind the gateway, as one public path prefix routed to it. */
export interface Upstream {
  /** Public path prefix, forwarded unchanged. */
  prefix: string
  url: string
  name: string
  /**
   * Largest request body forwarded under this prefix: what the service itself accepts there (capped by the
   * gateway's own limit). A larger body is the gateway's 413, and is never forwarded.
   */
  bodyLimit: number
}
