import pkcs11js from 'pkcs11js'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { HsmError, ckrValueOf, toHsmError } from './errors.js'
import { describePinSource, readPin } from './pin-source.js'
import { SessionPool } from './session-pool.js'
import { describeSelector, type TokenSelector } from './token-lookup.js'

/** Returns the token selector of a member config: label or serial, whichever is set. */
export function memberTokenSelector(config: MemberConfig): TokenSelector {
  return config.token_label !== undefined
    ? { label: config.token_label }
    : { serial: config.token_serial }
}

/**
 * Opens the member's session pool on `slot` and logs the user in with the PIN from its
 * configured source. Login errors name the token and where the PIN comes from.
 */
export function openLoggedInPool(
  pkcs11: pkcs11js.PKCS11,
  slot: pkcs11js.Handle,
  config: MemberConfig,
  logger: Logger,
): SessionPool {
  const pool = new SessionPool(pkcs11, slot, {
    member: config.name,
    size: config.pool_size,
    acquireTimeoutMs: config.operation_timeout_ms,
  })
  pool.open()
  try {
    pool.login(readPin(config, logger))
    return pool
  } catch (error) {
    void pool.close(0)
    throw loginError(error, config)
  }
}

/**
 * Logs the user in on `session` with a freshly read PIN; CKR_USER_ALREADY_LOGGED_IN counts as
 * success. Used after the login was switched to the security officer.
 */
export function loginUser(
  pkcs11: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  config: MemberConfig,
  logger: Logger,
): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, readPin(config, logger))
  } catch (error) {
    if (ckrValueOf(error) === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return
    throw loginError(error, config)
  }
}

function loginError(error: unknown, config: MemberConfig): HsmError {
  const hsmError = toHsmError(error, config.name, 'C_Login')
  if (hsmError.code !== 'hsm_login_failed') return hsmError
  const token = describeSelector(memberTokenSelector(config))
  return new HsmError(
    'hsm_login_failed',
    `member '${config.name}': C_Login as user to token with ${token} failed with ` +
      `${hsmError.pkcs11?.ckr ?? 'an error'}; check that ${describePinSource(config)} contains ` +
      "the token's user PIN (an SO can set it with 'pkcs11-tool --init-pin --login " +
      "--login-type so')",
    { member: config.name, pkcs11: hsmError.pkcs11, cause: error },
  )
}
