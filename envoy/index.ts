export { renderBootstrap } from './bootstrap.js'
export { resolveEnvoyBinary } from './envoy-binary.js'
