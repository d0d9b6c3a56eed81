import { isAbsolute, resolve } from 'node:path'
import { ConfigError, type LoadedConfig } from '../../config/load.js'
import { durationMs } from '../pki/duration.js'

/** Checkpoint settings of a setup, with defaults applied and paths absolute. */
export interface AuditSettings {
  checkpointRecords: number
  checkpointIntervalMs: number
  /** PEM file of the audit public keys that verification trusts. */
  publicKeysFile: string
}

const DEFAULT_RECORDS = 1000
const DEFAULT_INTERVAL = '60s'
const DEFAULT_PUBLIC_KEYS = 'pki/audit-keys.pem'
/** Shortest checkpoint interval; each checkpoint is one HSM signature per writer. */
const MIN_INTERVAL_MS = 1000

/** Reads the `audit` section of a loaded config. Throws ConfigError for an interval under 1 s. */
export function auditSettings(config: LoadedConfig): AuditSettings {
  const section = config.audit
  const interval = section?.checkpoint_interval ?? DEFAULT_INTERVAL
  const intervalMs = durationMs(interval)
  if (intervalMs < MIN_INTERVAL_MS) {
    throw new ConfigError(
      `audit.checkpoint_interval is '${interval}'; set at least '1s' (the default is '60s')`,
    )
  }
  const file = section?.public_keys ?? DEFAULT_PUBLIC_KEYS
  return {
    checkpointRecords: section?.checkpoint_records ?? DEFAULT_RECORDS,
    checkpointIntervalMs: intervalMs,
    publicKeysFile: isAbsolute(file) ? file : resolve(config.dir, file),
  }
}
