import { join } from 'node:path'
import { loadConfig, policyDir, type LoadedConfig } from '../../config/load.js'
import { PolicyError } from '../../authz/policy-load.js'
import { loadPolicyEngine } from '../../authz/policy-watch.js'
import type { PolicyEngine } from '../../authz/policy-engine.js'
import { CliError, EXIT } from '../cli-error.js'

/** Loads the setup's configuration from DIR/hsmgate.yaml. */
export function setupConfig(dir: string): LoadedConfig {
  return loadConfig(join(dir, 'hsmgate.yaml'))
}

/**
 * Returns the policy directory: `--policies` when given, else the one the setup in `--dir`
 * configures.
 */
export function chosenPolicyDir(values: { policies?: string; dir?: string }): string {
  return values.policies ?? policyDir(setupConfig(values.dir ?? 'var'))
}

/** Loads and validates policies; an invalid set is a configuration error (exit 78). */
export function loadEngineOrExit(dir: string): PolicyEngine {
  try {
    return loadPolicyEngine(dir)
  } catch (error) {
    if (error instanceof PolicyError) throw new CliError(error.message, EXIT.config)
    throw error
  }
}
