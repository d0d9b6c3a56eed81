import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import { SqliteStore } from '../../store/index.js'
import { CliError, EXIT } from '../cli-error.js'

/** Options that name the setup whose audit log a command reads. */
export const auditSourceOptions = {
  config: { type: 'string' },
  dir: { type: 'string', default: 'var' },
} as const

/** The config and store of the setup that `--config FILE` or `--dir DIR` names. */
export interface AuditSource {
  config: LoadedConfig
  store: SqliteStore
}

/**
 * Opens the store of the setup: `--config FILE` when given, otherwise DIR/hsmgate.yaml. Throws
 * CliError when the store file does not exist, instead of creating an empty one.
 */
export function openAuditSource(values: { config?: string; dir: string }): AuditSource {
  const config = loadConfig(values.config ?? join(values.dir, 'hsmgate.yaml'))
  if (!existsSync(config.store.sqlite)) {
    throw new CliError(
      `store ${config.store.sqlite} does not exist; check store.sqlite in ${config.file}`,
      EXIT.config,
    )
  }
  return { config, store: new SqliteStore(config.store.sqlite) }
}
