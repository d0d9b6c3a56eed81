export { renderBootstrap } from './bootstrap.js'
export { resolveEnvoyBinary } from './envoy-binary.js'
export { envoyAdminGet, type AdminResult } from './admin-client.js'
