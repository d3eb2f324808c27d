export * from './cpu.js'
export * from './load.js'
export * from './profiles.js'
export * from './report.js'
