export * from './errors.js'
export * from './message-store-client.js'
