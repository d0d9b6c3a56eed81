import { readFileSync, statSync } from 'node:fs'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { HsmError } from './errors.js'

/**
 * Reads the user PIN of a member from `pin_file` (one trailing newline removed) or from the
 * environment variable named by `pin_env`. The PIN is read on each login, not kept, so a
 * rotated PIN file takes effect at the next re-check.
 */
export function readPin(member: MemberConfig, logger: Logger): string {
  const pin =
    member.pin_file !== undefined
      ? readPinFile(member, member.pin_file, logger)
      : readPinEnv(member)
  if (pin.length === 0) {
    const source = describePinSource(member)
    throw new HsmError(
      'hsm_pin_unavailable',
      `member '${member.name}': the PIN is empty; ${source} must contain the token's user PIN`,
      { member: member.name },
    )
  }
  return pin
}

function readPinFile(member: MemberConfig, path: string, logger: Logger): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error'
    throw new HsmError(
      'hsm_pin_unavailable',
      `member '${member.name}': PIN file ${path} cannot be read (${code}); create it with mode ` +
        "0600, owned by the gateway's user, containing the token's user PIN",
      { member: member.name, cause: error },
    )
  }
  warnIfReadableByOthers(member.name, path, logger)
  return text.replace(/\r?\n$/, '')
}

function readPinEnv(member: MemberConfig): string {
  const name = member.pin_env ?? ''
  const value = process.env[name]
  if (value === undefined) {
    throw new HsmError(
      'hsm_pin_unavailable',
      `member '${member.name}': environment variable ${name} is not set; set it to the ` +
        "token's user PIN or configure pin_file",
      { member: member.name },
    )
  }
  return value
}

/** PIN files already warned about, so that re-checks every few seconds do not repeat it. */
const warnedPaths = new Set<string>()

function warnIfReadableByOthers(member: string, path: string, logger: Logger): void {
  const mode = statSync(path).mode & 0o777
  if ((mode & 0o077) !== 0 && !warnedPaths.has(path)) {
    warnedPaths.add(path)
    logger.warn(
      { member, pin_file: path, mode: `0${mode.toString(8)}` },
      'PIN file is readable by group or others; run chmod 600 on it',
    )
  }
}

/** Names where a member's PIN comes from, for messages; never the PIN itself. */
export function describePinSource(member: MemberConfig): string {
  return member.pin_file !== undefined
    ? `PIN file ${member.pin_file}`
    : `environment variable ${member.pin_env ?? ''}`
}
