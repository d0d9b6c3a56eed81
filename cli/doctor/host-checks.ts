import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import Database from 'better-sqlite3'
import { loadPolicyDir } from '../../authz/policy-load.js'
import { policyDir, type LoadedConfig } from '../../config/load.js'
import { projectRoot } from '../../config/project-root.js'
import { resolveEnvoyBinary } from '../../envoy/index.js'
import { sqliteMigrations } from '../../store/migrations/sqlite.js'
import { fail, ok, warn, type CheckResult } from './check-result.js'

/** Oldest Envoy release whose bootstrap fields the gateway renders. */
const MIN_ENVOY = [1, 30] as const
/** Audit records newer than now by more than this mean the clock went backwards. */
const MAX_CLOCK_BACKSTEP_MS = 5 * 60_000

/** Finds Envoy and checks that it runs and is recent enough. */
export function checkEnvoy(): CheckResult {
  let binary: string
  try {
    binary = resolveEnvoyBinary(projectRoot())
  } catch (error) {
    return fail('envoy', (error as Error).message, "run 'bash deploy/install.sh' or set ENVOY_BIN")
  }
  let output: string
  try {
    output = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  } catch (error) {
    return fail(
      'envoy',
      `${binary} --version failed: ${(error as Error).message}`,
      'reinstall Envoy (remove .venv and run deploy/install.sh) or point ENVOY_BIN at a working binary',
    )
  }
  const match = /version: [0-9a-f]+\/(\d+)\.(\d+)\.(\d+)/.exec(output)
  if (match === null) {
    return warn('envoy', `${binary} printed no version`, 'check that ENVOY_BIN is Envoy')
  }
  const [major, minor] = [Number(match[1]), Number(match[2])]
  const version = `${match[1]}.${match[2]}.${match[3]}`
  if (major < MIN_ENVOY[0] || (major === MIN_ENVOY[0] && minor < MIN_ENVOY[1])) {
    return fail(
      'envoy',
      `${binary} is version ${version}; at least ${MIN_ENVOY.join('.')} is needed`,
      'install a newer Envoy (deploy/install.sh installs 1.40)',
    )
  }
  return ok('envoy', `${binary} version ${version}`)
}

/** Checks that the SQLite store exists, opens, and has every migration applied. */
export function checkStore(config: LoadedConfig): CheckResult {
  const file = config.store.sqlite
  // TODO: connect to a store.postgres database and compare its schema_migrations as well.
  if (file === undefined) {
    return {
      name: 'store',
      status: 'warn',
      detail: 'store.postgres is set; doctor checks only SQLite store files',
      fix: "run 'hsmgate audit verify', which opens the database and reads every audit chain",
    }
  }
  let db: Database.Database
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
  } catch (error) {
    return fail(
      'store',
      `cannot open ${file}: ${(error as Error).message}`,
      "check store.sqlite; 'hsmgate init' creates the store, 'hsmgate up' migrates it",
    )
  }
  try {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as {
      v: number | null
    }
    const applied = row.v ?? 0
    const known = sqliteMigrations.length
    if (applied < known) {
      return fail(
        'store',
        `${file} has ${applied} of ${known} migrations`,
        'start the crypto backend once (hsmgate up or hsmgate run backend); it migrates at start',
      )
    }
    if (applied > known) {
      return fail(
        'store',
        `${file} has ${applied} migrations; this hsmgate knows ${known}`,
        'the store was migrated by a newer hsmgate; upgrade hsmgate on this node',
      )
    }
    return ok('store', `${file} reachable, ${applied} migrations applied`)
  } catch (error) {
    return fail(
      'store',
      `${file} is not an hsmgate store: ${(error as Error).message}`,
      'check store.sqlite, or restore the store from a backup (docs/operations.md)',
    )
  } finally {
    db.close()
  }
}

/** Checks the policy directory: it must load and validate against the schema. */
export function checkPolicies(config: LoadedConfig): CheckResult {
  const dir = policyDir(config)
  try {
    const source = loadPolicyDir(dir)
    return ok('policies', `${dir}: ${source.policies.size} policies, version ${source.version}`)
  } catch (error) {
    const fix = existsSync(dir)
      ? `fix the policy files, then run 'hsmgate policy check --policies ${dir}'`
      : `create ${dir} with the *.cedar policy files, or set authz.policies in ${config.file} ` +
        'to the directory that holds them'
    return fail('policies', (error as Error).message, fix)
  }
}

/**
 * Checks that the clock is plausible: not before the CA certificate's notBefore, and not behind
 * the newest audit record (a clock that went backwards breaks certificate lifetimes).
 */
export function checkClock(config: LoadedConfig, nowMs = Date.now()): CheckResult {
  const problems: string[] = []
  try {
    const ca = new X509Certificate(readFileSync(config.pki.ca_cert))
    if (Date.parse(ca.validFrom) > nowMs) {
      problems.push(`the CA certificate is valid only from ${ca.validFrom}`)
    }
  } catch {
    // An unreadable CA certificate is reported by the certificate check.
  }
  const newest =
    config.store.sqlite === undefined ? undefined : newestAuditTime(config.store.sqlite)
  if (newest !== undefined && newest - nowMs > MAX_CLOCK_BACKSTEP_MS) {
    problems.push(`the newest audit record is from ${new Date(newest).toISOString()}`)
  }
  const now = new Date(nowMs).toISOString()
  if (problems.length > 0) {
    return fail(
      'clock',
      `system time ${now} is behind: ${problems.join('; ')}`,
      'synchronise the clock (timedatectl set-ntp true, or chrony), then restart the gateway',
    )
  }
  return ok('clock', `system time ${now} is after the CA start and the newest audit record`)
}

function newestAuditTime(file: string): number | undefined {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true })
    try {
      const row = db.prepare('SELECT MAX(time) AS t FROM audit').get() as { t: string | null }
      return row.t === null ? undefined : Date.parse(row.t)
    } finally {
      db.close()
    }
  } catch {
    return undefined
  }
}

/** Checks that the CA certificate file is readable and not expired. */
export function checkCaCertificate(config: LoadedConfig, nowMs = Date.now()): CheckResult {
  try {
    const ca = new X509Certificate(readFileSync(config.pki.ca_cert))
    if (Date.parse(ca.validTo) < nowMs) {
      return fail(
        'ca certificate',
        `${config.pki.ca_cert} expired at ${ca.validTo}`,
        'rotate the issuing CA (docs/operations.md, CA rotation)',
      )
    }
    return ok('ca certificate', `${config.pki.ca_cert} valid until ${ca.validTo}`)
  } catch (error) {
    return fail(
      'ca certificate',
      `cannot read ${config.pki.ca_cert}: ${(error as Error).message}`,
      "check pki.ca_cert, or import the CA certificate with 'hsmgate ca import'",
    )
  }
}

/** Returns the owner and permission bits of a file, or undefined when it does not exist. */
export function fileMode(path: string): { uid: number; mode: number } | undefined {
  try {
    const stats = statSync(path)
    return { uid: stats.uid, mode: stats.mode & 0o777 }
  } catch {
    return undefined
  }
}
