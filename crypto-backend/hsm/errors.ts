import pkcs11js from 'pkcs11js'
import { ckrName, isMemberFaultCkr } from './ckr.js'

export type HsmErrorCode =
  | 'hsm_module_load_failed'
  | 'hsm_token_not_found'
  | 'hsm_pin_unavailable'
  | 'hsm_login_failed'
  | 'hsm_key_not_found'
  | 'hsm_decrypt_failed'
  | 'hsm_operation_failed'
  | 'hsm_unavailable'
  | 'hsm_timeout'

/** The PKCS#11 function that failed and its CK_RV, as name and number. */
export interface Pkcs11Failure {
  function: string
  ckr: string
  value: number
}

export interface HsmErrorOptions {
  member?: string
  pkcs11?: Pkcs11Failure
  cause?: unknown
  /** Overrides the default, which is true for 'hsm_timeout' and for device-side CK_RV values. */
  memberFault?: boolean
}

/**
 * An HSM failure with a stable code. Messages name the member and, where one exists, the fix.
 * They never contain a PIN or key material.
 */
export class HsmError extends Error {
  readonly code: HsmErrorCode
  readonly member?: string
  readonly pkcs11?: Pkcs11Failure
  /**
   * True when the failure comes from the member (device, token, session, timeout) and not from
   * the request, so the cluster marks the member failed and retries on another member.
   */
  readonly memberFault: boolean

  constructor(code: HsmErrorCode, message: string, options: HsmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'HsmError'
    this.code = code
    this.member = options.member
    this.pkcs11 = options.pkcs11
    this.memberFault = options.memberFault ?? defaultMemberFault(code, options.pkcs11)
  }
}

function defaultMemberFault(code: HsmErrorCode, failure: Pkcs11Failure | undefined): boolean {
  if (code === 'hsm_timeout') return true
  if (code !== 'hsm_operation_failed' || failure === undefined) return false
  return isMemberFaultCkr(failure.value)
}

/**
 * Reads the CK_RV number from an error thrown by pkcs11js 2.1.7. Its Pkcs11Error carries the
 * number in `code`. C_CreateObject, C_CopyObject and C_SetAttributeValue bypass that wrapper and
 * throw a plain Error whose whole message is `CKR_NAME:NUMBER`, so for those the number is taken
 * from that fixed format. Returns undefined for errors that carry no CK_RV.
 */
export function ckrValueOf(error: unknown): number | undefined {
  if (error instanceof pkcs11js.Pkcs11Error && typeof error.code === 'number' && error.code > 0) {
    return error.code
  }
  if (!(error instanceof Error)) return undefined
  const match = /^CKR_[A-Z0-9_]+:(\d+)$/.exec(error.message)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

/** Returns the failed function and CK_RV of a pkcs11js error, or undefined for other errors. */
export function pkcs11FailureOf(error: unknown, fn: string): Pkcs11Failure | undefined {
  const value = ckrValueOf(error)
  if (value === undefined) return undefined
  return { function: fn, ckr: ckrName(value), value }
}

/** Maps a CK_RV to the HsmErrorCode that the cluster reports for it by default. */
export function codeForCkr(value: number): HsmErrorCode {
  switch (value) {
    case pkcs11js.CKR_KEY_HANDLE_INVALID:
    case pkcs11js.CKR_OBJECT_HANDLE_INVALID:
      return 'hsm_key_not_found'
    case pkcs11js.CKR_PIN_INCORRECT:
    case pkcs11js.CKR_PIN_INVALID:
    case pkcs11js.CKR_PIN_LEN_RANGE:
    case pkcs11js.CKR_PIN_LOCKED:
    case pkcs11js.CKR_PIN_EXPIRED:
    case pkcs11js.CKR_USER_PIN_NOT_INITIALIZED:
      return 'hsm_login_failed'
    default:
      return 'hsm_operation_failed'
  }
}

/**
 * Converts anything thrown by a PKCS#11 call into an HsmError for `member`. An HsmError passes
 * through unchanged.
 */
export function toHsmError(error: unknown, member: string, fn: string): HsmError {
  if (error instanceof HsmError) return error
  const failure = pkcs11FailureOf(error, fn)
  if (failure === undefined) {
    const detail = error instanceof Error ? error.message : String(error)
    return new HsmError('hsm_operation_failed', `member '${member}': ${fn} failed: ${detail}`, {
      member,
      cause: error,
    })
  }
  const hex = `0x${failure.value.toString(16)}`
  return new HsmError(
    codeForCkr(failure.value),
    `member '${member}': ${fn} failed with ${failure.ckr} (${hex})`,
    { member, pkcs11: failure, cause: error },
  )
}

/** Runs one synchronous PKCS#11 call and converts its failure into an HsmError. */
export function callSync<T>(member: string, fn: string, action: () => T): T {
  try {
    return action()
  } catch (error) {
    throw toHsmError(error, member, fn)
  }
}

/** Awaits one asynchronous PKCS#11 call and converts its failure into an HsmError. */
export async function callAsync<T>(
  member: string,
  fn: string,
  action: () => Promise<T>,
): Promise<T> {
  try {
    return await action()
  } catch (error) {
    throw toHsmError(error, member, fn)
  }
}
