import { readFileSync } from 'node:fs'

/**
 * Environment variable that names a fault file for failure tests. While the file exists, every
 * audit transaction of a writer it lists fails before it reaches the store, exactly as if the
 * store were unwritable. The file lists writer ids separated by white space, or `*` for all.
 *
 * The hook exists because a running gateway cannot be made unable to write its SQLite file from
 * outside: the store keeps the file open, root ignores permission bits, and a full disk fails
 * SQLite writes only once the write-ahead log outgrows the pages it already holds. The hook can
 * only make writes fail, so it cannot hide or skip an audit record.
 */
export const AUDIT_FAULT_ENV = 'HSMGATE_AUDIT_FAULT_FILE'

/** The failure the fault file injects. */
export class AuditFaultError extends Error {
  readonly code = 'audit_fault_injected'

  constructor(file: string) {
    super(`audit write failed: fault file ${file} lists this writer`)
    this.name = 'AuditFaultError'
  }
}

/**
 * Returns a check that throws AuditFaultError when the fault file in `env` exists and lists one
 * of `writers`, or undefined when the variable is not set.
 */
export function auditFaultCheck(
  env: NodeJS.ProcessEnv = process.env,
): ((writers: readonly string[]) => void) | undefined {
  const file = env[AUDIT_FAULT_ENV]
  if (file === undefined || file === '') return undefined
  return (writers) => {
    let listed: string[]
    try {
      listed = readFileSync(file, 'utf8').split(/\s+/).filter(Boolean)
    } catch {
      return
    }
    if (listed.includes('*') || writers.some((writer) => listed.includes(writer))) {
      throw new AuditFaultError(file)
    }
  }
}
