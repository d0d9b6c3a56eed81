import pkcs11js from 'pkcs11js'

/** CK_RV values that describe the state of the device, token or session, not the request. */
const MEMBER_FAULTS = new Set<number>([
  pkcs11js.CKR_HOST_MEMORY,
  pkcs11js.CKR_SLOT_ID_INVALID,
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_FUNCTION_FAILED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_DEVICE_MEMORY,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_FUNCTION_CANCELED,
  pkcs11js.CKR_OPERATION_ACTIVE,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_SESSION_COUNT,
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
])

let names: Map<number, string> | undefined

/** Builds the value-to-name table from the CKR_ constants that pkcs11js exports. */
function ckrNames(): Map<number, string> {
  if (names !== undefined) return names
  names = new Map()
  for (const [name, value] of Object.entries(pkcs11js)) {
    if (name.startsWith('CKR_') && typeof value === 'number' && !names.has(value)) {
      names.set(value, name)
    }
  }
  return names
}

/** Returns the CKR_ name of a CK_RV value, or its hexadecimal form for vendor values. */
export function ckrName(value: number): string {
  return ckrNames().get(value) ?? `CKR_0x${value.toString(16)}`
}

/**
 * Tells whether a CK_RV describes a member fault (device, token, session or login state), after
 * which the cluster marks the member failed and retries on another member.
 */
export function isMemberFaultCkr(value: number): boolean {
  return MEMBER_FAULTS.has(value)
}
