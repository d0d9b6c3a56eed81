import { randomBytes } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { HsmError, callSync } from './errors.js'
import { acquireModule } from './pkcs11-module.js'
import { listTokens, type FoundToken } from './token-lookup.js'

/** CK_TOKEN_INFO.label is 32 bytes, padded with spaces. */
const LABEL_LENGTH = 32
/** The name used in messages for this setup step, which has no member yet. */
const SETUP = 'token setup'

/**
 * Initializes a token in the module's free slot (SoftHSM2 always offers one uninitialized
 * token) with C_InitToken, then sets the user PIN with C_Login as SO and C_InitPIN. PINs go
 * through the PKCS#11 API only, never through a command line that other users could read.
 * SoftHSM2 reads SOFTHSM2_CONF from process.env when the module is first initialized.
 */
export async function initializeToken(
  modulePath: string,
  label: string,
  soPin: string,
  userPin: string,
): Promise<{ serial: string }> {
  checkLabel(label)
  if (soPin.length === 0 || userPin.length === 0) {
    throw new HsmError('hsm_pin_unavailable', `${SETUP}: SO PIN and user PIN must not be empty`)
  }
  const module = acquireModule(modulePath)
  try {
    rejectDuplicateLabel(module.pkcs11, label, modulePath)
    const slot = freeSlot(module.pkcs11, modulePath)
    // pkcs11js passes the label as a string of its own length, but C_InitToken reads 32 bytes.
    // Unpadded, SoftHSM2 2.6.1 stored NUL bytes after the label.
    const paddedLabel = label + ' '.repeat(LABEL_LENGTH - Buffer.byteLength(label))
    callSync(SETUP, 'C_InitToken', () => module.pkcs11.C_InitToken(slot, soPin, paddedLabel))
    // SoftHSM2 2.6.1 lists the new token in the same slot at once (and adds a new free slot),
    // so re-reading the slot list is enough. Tokens made by other processes need a fresh
    // C_Initialize instead, which only a restart of a process with open sessions can give.
    const token = findByLabel(module.pkcs11, label)
    if (token === undefined) {
      throw new HsmError(
        'hsm_token_not_found',
        `${SETUP}: token '${label}' was initialized but ${modulePath} does not list it; restart ` +
          'the process so that the module reads its token list again',
      )
    }
    initUserPin(module.pkcs11, token.slot, soPin, userPin)
    return { serial: token.serial }
  } finally {
    module.release()
  }
}

/** Returns a PIN of 24 base64url characters (144 random bits). */
export function randomPin(): string {
  return randomBytes(18).toString('base64url')
}

function checkLabel(label: string): void {
  const bytes = Buffer.byteLength(label)
  if (bytes === 0 || bytes > LABEL_LENGTH || label !== label.trim()) {
    throw new HsmError(
      'hsm_operation_failed',
      `${SETUP}: invalid token label '${label}': expected 1 to ${LABEL_LENGTH} bytes without ` +
        'leading or trailing spaces',
    )
  }
}

function rejectDuplicateLabel(pkcs11: pkcs11js.PKCS11, label: string, modulePath: string): void {
  if (findByLabel(pkcs11, label) === undefined) return
  throw new HsmError(
    'hsm_operation_failed',
    `${SETUP}: a token with label '${label}' already exists in ${modulePath}; choose another ` +
      'label or delete that token (softhsm2-util --delete-token --token LABEL)',
  )
}

function findByLabel(pkcs11: pkcs11js.PKCS11, label: string): FoundToken | undefined {
  return listTokens(pkcs11, SETUP).find((token) => token.label === label)
}

function freeSlot(pkcs11: pkcs11js.PKCS11, modulePath: string): pkcs11js.Handle {
  const slots = callSync(SETUP, 'C_GetSlotList', () => pkcs11.C_GetSlotList(true))
  for (const slot of slots) {
    const info = callSync(SETUP, 'C_GetTokenInfo', () => pkcs11.C_GetTokenInfo(slot))
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) return slot
  }
  throw new HsmError(
    'hsm_token_not_found',
    `${SETUP}: ${modulePath} has no slot with an uninitialized token; for SoftHSM2 check that ` +
      'SOFTHSM2_CONF names a configuration whose directories.tokendir exists and is writable',
  )
}

function initUserPin(
  pkcs11: pkcs11js.PKCS11,
  slot: pkcs11js.Handle,
  soPin: string,
  userPin: string,
): void {
  const flags = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION
  const session = callSync(SETUP, 'C_OpenSession', () => pkcs11.C_OpenSession(slot, flags))
  try {
    callSync(SETUP, 'C_Login', () => pkcs11.C_Login(session, pkcs11js.CKU_SO, soPin))
    callSync(SETUP, 'C_InitPIN', () => pkcs11.C_InitPIN(session, userPin))
    callSync(SETUP, 'C_Logout', () => pkcs11.C_Logout(session))
  } finally {
    pkcs11.C_CloseSession(session)
  }
}
