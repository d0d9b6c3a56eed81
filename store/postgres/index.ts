export { PostgresStore } from './postgres-store.js'
export {
  PostgresPool,
  DEFAULT_QUERY_TIMEOUT_MS,
  type PostgresPoolOptions,
} from './postgres-pool.js'
export { MigrationError } from './migrate.js'
export { redactUrl } from './connection-url.js'
