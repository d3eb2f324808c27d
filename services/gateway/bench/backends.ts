// What the gateway's bench and soak both need of Postgres, Redis and the machine (probes, clients, the
// clean-up of their own schemas and keys, server versions, free ports): shared with the message-store's
// bench in @session-runtime/bench. Kept for bench/soak.ts, which imports them from here.
export {
  deleteRedisKeys,
  dropSchemas,
  freePort,
  postgresVersion,
  probeBackends,
  redisVersion,
  withPg,
} from '@session-runtime/bench'
