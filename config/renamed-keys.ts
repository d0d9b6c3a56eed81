import { socketPaths, type LoadedConfig } from './load.js'

/** A configuration key that still loads but changed its meaning. */
export interface RenamedKey {
  key: string
  /** The key's current effect, naming the configuration file. */
  detail: string
  fix: string
}

/**
 * Lists the keys of `config` that still load but changed their meaning. `envoy.admin_port`
 * once opened Envoy's whole admin interface on 127.0.0.1. It now opens only the stats listener,
 * and the admin interface moved to a Unix socket in the runtime directory.
 */
export function renamedKeys(config: LoadedConfig): RenamedKey[] {
  if (config.envoy.admin_port === undefined) return []
  return [
    {
      key: 'envoy.admin_port',
      detail:
        `${config.file}: envoy.admin_port ${config.envoy.admin_port} now opens only the stats ` +
        `listener (GET /stats/prometheus and GET /ready), and Envoy's admin interface is on ` +
        `the Unix socket ${socketPaths(config).envoyAdmin}`,
      fix: 'rename envoy.admin_port to envoy.stats_port',
    },
  ]
}

/** Returns one log line per renamed key of `config`, with its fix. */
export function renamedKeyWarnings(config: LoadedConfig): string[] {
  return renamedKeys(config).map((renamed) => `${renamed.detail}; ${renamed.fix}`)
}
