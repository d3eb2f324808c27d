export {
  type Backends,
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  deleteRedisKeys,
  dropSchemas,
  dropTestSchemas,
  postgresVersion,
  probeBackends,
  redisVersion,
  testBackends,
  testStorageEnv,
  withPg,
} from './backends.js'
export {
  childExecArgv,
  type StopOptions,
  sleep,
  stopChild,
  type Teardown,
  waitFor,
} from './child.js'
export {
  type ChatCall,
  type ChatMessage,
  type FakeModel,
  type FakeModelMode,
  type FakeModelOptions,
  fakeReply,
  fakeUsage,
  startFakeModel,
} from './fake-model.js'
export { freePort, freePorts } from './free-ports.js'
export { LOG_LEVELS, type LogLine, logInto } from './log-lines.js'
export { asRoot, PostgresServer, postgresBin, startPostgresServer } from './postgres-server.js'
export {
  KEY_A,
  KEY_B,
  type ProcessStack,
  type RunningService,
  repoRoot,
  type ServiceExit,
  type ServiceName,
  type StackOptions,
  type StackTest,
  startProcessStack,
  startStack,
  TENANT_A,
  TENANT_B,
} from './process-stack.js'
export {
  hasRedisCluster,
  type RedisCluster,
  type RedisClusterNode,
  type RedisClusterOptions,
  type RedisClusterRole,
  startRedisCluster,
} from './redis-cluster.js'
export { hasRedisServer, RedisServer, type RedisServerOptions, startRedisServer } from './redis-server.js'
export { startTcpRelay, type TcpRelay, type TcpRelayOptions } from './tcp-relay.js'
