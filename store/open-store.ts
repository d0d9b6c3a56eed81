import type { PostgresStoreConfig, StoreConfig } from '../config/store-schema.js'
import { durationMs } from '../crypto-backend/pki/duration.js'
import type { Logger } from '../log/logger.js'
import { PostgresStore, type PostgresPoolOptions } from './postgres/index.js'
import { SqliteStore } from './sqlite-store.js'
import type { Store } from './store.js'

/** Converts the store.postgres section of the configuration to pool options. */
export function postgresPoolOptions(
  config: PostgresStoreConfig,
  logger?: Logger,
): PostgresPoolOptions {
  return {
    url: config.url,
    poolSize: config.pool_size,
    connectTimeoutMs: durationMs(config.connect_timeout),
    acquireTimeoutMs: durationMs(config.acquire_timeout),
    queryTimeoutMs: durationMs(config.query_timeout),
    schema: config.schema,
    logger,
  }
}

/**
 * Opens the store that the configuration names: the SQLite file of `store.sqlite`, or the
 * PostgreSQL database of `store.postgres`, and applies pending migrations. Throws
 * StoreUnavailableError when the database cannot be reached within its acquire timeout and
 * MigrationError when a migration fails. The caller must close the store.
 */
export async function openStore(config: StoreConfig, logger?: Logger): Promise<Store> {
  if (config.postgres !== undefined) {
    const store = await PostgresStore.open(postgresPoolOptions(config.postgres, logger))
    logger?.info(
      {
        database: store.address,
        schema: config.postgres.schema,
        pool_size: config.postgres.pool_size,
      },
      'PostgreSQL store open',
    )
    return store
  }
  if (config.sqlite !== undefined) return new SqliteStore(config.sqlite)
  throw new TypeError('the store configuration names no store; set store.sqlite or store.postgres')
}
