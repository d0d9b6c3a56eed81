import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse } from 'yaml'
import type { z } from 'zod'
import { configSchema, type GatewayConfig } from './schema.js'

/** Policy directory, relative to hsmgate.yaml, when authz.policies is not set. */
export const DEFAULT_POLICY_DIR = 'policies'

/** A configuration file that is missing, unreadable, or fails validation. */
export class ConfigError extends Error {
  readonly code = 'config_invalid'

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConfigError'
  }
}

/** A validated configuration whose paths are absolute, plus the file it came from. */
export interface LoadedConfig extends GatewayConfig {
  readonly file: string
  readonly dir: string
}

/**
 * Reads and validates hsmgate.yaml. Relative paths in it are resolved against the file's
 * directory. Throws ConfigError naming the file, each invalid field and what it expects.
 */
export function loadConfig(file: string): LoadedConfig {
  const path = resolve(file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    const hint =
      'give the hsmgate.yaml of an existing setup (--config FILE or --dir DIR), or create a ' +
      "demo setup with 'hsmgate init --dir ./var'; docs/operations.md describes a production install"
    throw new ConfigError(`cannot read ${path} (${code}); ${hint}`, {
      cause: error,
    })
  }

  let raw: unknown
  try {
    raw = parse(text)
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message}`, {
      cause: error,
    })
  }

  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    throw new ConfigError(`${path} is invalid:\n${formatIssues(parsed.error.issues)}`)
  }
  checkUniqueMemberNames(path, parsed.data)
  checkDistinctPorts(path, parsed.data)
  return resolvePaths(parsed.data, path)
}

function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)'
      const missing = issue.code === 'invalid_type' && issue.message.endsWith('received undefined')
      return `  ${field}: ${missing ? `missing; ${issue.message.replace(/, received undefined$/, '')}` : issue.message}`
    })
    .join('\n')
}

function checkDistinctPorts(path: string, config: GatewayConfig): void {
  const ports: Array<[string, number | undefined]> = [
    ['listen.port', config.listen.port],
    ['listen.enroll_port', config.listen.enroll_port],
    [statsPortField(config), config.envoy.stats_port],
    ['metrics.authz_port', config.metrics.authz_port],
    ['metrics.backend_port', config.metrics.backend_port],
  ]
  const seen = new Map<number, string>()
  for (const [field, port] of ports) {
    if (port === undefined) continue
    const other = seen.get(port)
    if (other !== undefined) {
      throw new ConfigError(
        `${path} is invalid:\n  ${field}: port ${port} is already used by ${other}; choose another port`,
      )
    }
    seen.set(port, field)
  }
}

/** Names the key that set the stats port, so that messages name the key the operator wrote. */
export function statsPortField(config: GatewayConfig): string {
  return config.envoy.admin_port === undefined ? 'envoy.stats_port' : 'envoy.admin_port'
}

function checkUniqueMemberNames(path: string, config: GatewayConfig): void {
  const seen = new Set<string>()
  for (const member of config.hsm.members) {
    if (seen.has(member.name)) {
      throw new ConfigError(
        `${path} is invalid:\n  hsm.members: name '${member.name}' is used twice`,
      )
    }
    seen.add(member.name)
  }
}

function resolvePaths(config: GatewayConfig, file: string): LoadedConfig {
  const dir = dirname(file)
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p))
  return {
    ...config,
    file,
    dir,
    runtime_dir: at(config.runtime_dir),
    tls: { ...config.tls, trust_bundle: at(config.tls.trust_bundle) },
    authz: {
      ...config.authz,
      policies: at(config.authz.policies ?? DEFAULT_POLICY_DIR),
      decision_secret: at(config.authz.decision_secret),
    },
    backend: { ...config.backend, decision_secret: at(config.backend.decision_secret) },
    hsm: {
      environment: Object.fromEntries(
        Object.entries(config.hsm.environment).map(([k, v]) => [
          k,
          k.endsWith('_CONF') ? at(v) : v,
        ]),
      ),
      members: config.hsm.members.map((m) => ({
        ...m,
        module: at(m.module),
        pin_file: m.pin_file === undefined ? undefined : at(m.pin_file),
      })),
    },
    store: config.store.sqlite === undefined ? config.store : { sqlite: at(config.store.sqlite) },
    pki: {
      ...config.pki,
      ca_cert: at(config.pki.ca_cert),
      ca_chain: config.pki.ca_chain === undefined ? undefined : at(config.pki.ca_chain),
      tpm_manufacturer_cas:
        config.pki.tpm_manufacturer_cas === undefined
          ? undefined
          : at(config.pki.tpm_manufacturer_cas),
    },
    probe: { cert: at(config.probe.cert), key: at(config.probe.key) },
  }
}

/**
 * Returns the SQLite file of a configuration, for commands that read that file directly. Throws
 * ConfigError naming the command when the configuration uses store.postgres instead.
 */
export function sqliteFile(config: LoadedConfig, command: string): string {
  if (config.store.sqlite !== undefined) return config.store.sqlite
  throw new ConfigError(
    `${command} reads a SQLite store file, but ${config.file} sets store.postgres; ` +
      'inspect the PostgreSQL database with its own tools instead',
  )
}

/** The policy directory of a loaded configuration, absolute. */
export function policyDir(config: LoadedConfig): string {
  return config.authz.policies ?? resolve(config.dir, DEFAULT_POLICY_DIR)
}

/** Socket paths inside the runtime directory; every process derives them the same way. */
export function socketPaths(config: LoadedConfig): {
  authz: string
  backend: string
  envoyAdmin: string
} {
  return {
    authz: resolve(config.runtime_dir, 'authz.sock'),
    backend: resolve(config.runtime_dir, 'backend.sock'),
    envoyAdmin: resolve(config.runtime_dir, 'envoy-admin.sock'),
  }
}
