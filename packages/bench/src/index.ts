export {
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  deleteRedisKeys,
  dropSchemas,
  freePort,
  postgresVersion,
  probeBackends,
  redisVersion,
  withPg,
} from './backends.js'
export { cpuDelta, cpuSnapshot, type Snapshot, waitUntilQuiet } from './cpu.js'
export {
  DOCS_NOT_WRITTEN,
  fetchExpecting,
  type Measured,
  measured,
  positiveInt,
  writeDocsWanted,
} from './load.js'
export { childExecArgv, profileSummaries, topFrames } from './profiles.js'
export { fmt, machineLines, pct, sectionHeading, sectionText, verdictFindings } from './report.js'
