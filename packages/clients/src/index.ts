export * from './base-urls.js'
export * from './errors.js'
export * from './message-store-client.js'
export * from './upstream-rotation.js'
