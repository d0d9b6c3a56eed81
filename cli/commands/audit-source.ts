import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, type LoadedConfig } from '../../config/load.js'
import { openStore, type Store } from '../../store/index.js'
import { CliError, EXIT } from '../cli-error.js'

/** Options that name the setup whose audit log a command reads. */
export const auditSourceOptions = {
  config: { type: 'string' },
  dir: { type: 'string', default: 'var' },
} as const

/** The config and store of the setup that `--config FILE` or `--dir DIR` names. */
export interface AuditSource {
  config: LoadedConfig
  store: Store
}

/**
 * Opens the store of the setup: `--config FILE` when given, otherwise DIR/hsmgate.yaml. Throws
 * CliError when a SQLite store file does not exist, instead of creating an empty one.
 */
export async function openAuditSource(values: {
  config?: string
  dir: string
}): Promise<AuditSource> {
  const config = loadConfig(values.config ?? join(values.dir, 'hsmgate.yaml'))
  const file = config.store.sqlite
  if (file !== undefined && !existsSync(file)) {
    throw new CliError(
      `store ${file} does not exist; check store.sqlite in ${config.file}`,
      EXIT.config,
    )
  }
  return { config, store: await openStore(config.store) }
}
