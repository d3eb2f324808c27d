import type { StreamFormat } from './event-stream-watch.js'

/** A service behind the gateway: its instances' base URLs (requests are spread over them). */
export interface Service {
  name: string
  /** One base URL per instance (at least one). */
  urls: readonly string[]
}

/** A service behind the gateway, as one public path prefix routed to it. */
export interface Upstream extends Service {
  /** How its streamed answers end (domain/event-stream-watch); default Langflow's events. */
  streamFormat?: StreamFormat
  /** Public path prefix, forwarded unchanged. */
  prefix: string
  /**
   * Largest request body forwarded under this prefix: what the service itself accepts there (capped by the
   * gateway's own limit). A larger body is the gateway's 413, and is never forwarded.
   */
  bodyLimit: number
}
