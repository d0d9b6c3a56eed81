import pkcs11js from 'pkcs11js'
import { HsmError, callAsync, callSync } from './errors.js'

/**
 * Single PKCS#11 operations on one session. The calls that do cryptography use the pkcs11js
 * *Async variants, which run in the libuv thread pool; the C_*Init calls that precede them are
 * synchronous because they only set up session state.
 */

/** GCM authentication tag length in bytes (tagBits 128). */
export const GCM_TAG_LENGTH = 16
/**
 * Output buffer for C_Sign. A P-256 signature is 64 bytes. The buffer is larger because a too
 * small one gives CKR_BUFFER_TOO_SMALL and leaves the operation active on the session.
 */
const SIGNATURE_BUFFER_LENGTH = 132

/** CK_RV values that SoftHSM2 2.6.1 returns when a GCM tag or ciphertext does not verify. */
const DECRYPT_REJECTIONS = new Set<number>([
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
])

const SIGNATURE_REJECTIONS = new Set<number>([
  pkcs11js.CKR_SIGNATURE_INVALID,
  pkcs11js.CKR_SIGNATURE_LEN_RANGE,
])

export interface GcmInput {
  iv: Buffer
  aad: Buffer
}

/** Signs a precomputed digest with CKM_ECDSA; returns r||s. */
export async function signEcdsa(
  pkcs11: pkcs11js.PKCS11,
  member: string,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  digest: Buffer,
): Promise<Buffer> {
  callSync(member, 'C_SignInit', () =>
    pkcs11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key),
  )
  const output = Buffer.alloc(SIGNATURE_BUFFER_LENGTH)
  return callAsync(member, 'C_Sign', () => pkcs11.C_SignAsync(session, digest, output))
}

/** Verifies r||s over a digest with CKM_ECDSA; an invalid or wrong-length signature is false. */
export async function verifyEcdsa(
  pkcs11: pkcs11js.PKCS11,
  member: string,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  digest: Buffer,
  signature: Buffer,
): Promise<boolean> {
  callSync(member, 'C_VerifyInit', () =>
    pkcs11.C_VerifyInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key),
  )
  try {
    return await callAsync(member, 'C_Verify', () =>
      pkcs11.C_VerifyAsync(session, digest, signature),
    )
  } catch (error) {
    if (error instanceof HsmError && SIGNATURE_REJECTIONS.has(error.pkcs11?.value ?? 0))
      return false
    throw error
  }
}

function gcmMechanism(input: GcmInput): pkcs11js.Mechanism {
  // SoftHSM2 2.6.1 reads the PKCS#11 2.40 CK_GCM_PARAMS, which includes ulIvBits.
  const parameter: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM_v240,
    iv: input.iv,
    aad: input.aad,
    ivBits: input.iv.length * 8,
    tagBits: GCM_TAG_LENGTH * 8,
  }
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter }
}

/** Encrypts with CKM_AES_GCM; returns the ciphertext followed by the 16-byte tag. */
export async function encryptAesGcm(
  pkcs11: pkcs11js.PKCS11,
  member: string,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  input: GcmInput & { plaintext: Buffer },
): Promise<Buffer> {
  callSync(member, 'C_EncryptInit', () => pkcs11.C_EncryptInit(session, gcmMechanism(input), key))
  const output = Buffer.alloc(input.plaintext.length + GCM_TAG_LENGTH)
  return callAsync(member, 'C_Encrypt', () =>
    pkcs11.C_EncryptAsync(session, input.plaintext, output),
  )
}

/**
 * Decrypts ciphertext||tag with CKM_AES_GCM. A tag that does not verify is 'hsm_decrypt_failed'
 * and no member fault.
 */
export async function decryptAesGcm(
  pkcs11: pkcs11js.PKCS11,
  member: string,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  input: GcmInput & { ciphertext: Buffer },
): Promise<Buffer> {
  callSync(member, 'C_DecryptInit', () => pkcs11.C_DecryptInit(session, gcmMechanism(input), key))
  const output = Buffer.alloc(input.ciphertext.length)
  try {
    return await callAsync(member, 'C_Decrypt', () =>
      pkcs11.C_DecryptAsync(session, input.ciphertext, output),
    )
  } catch (error) {
    if (!(error instanceof HsmError) || !DECRYPT_REJECTIONS.has(error.pkcs11?.value ?? 0))
      throw error
    // NOTE: SoftHSM2 reports a wrong tag as CKR_GENERAL_ERROR, so a real device fault during
    // C_Decrypt is also reported as 'hsm_decrypt_failed' and does not mark the member failed.
    throw new HsmError(
      'hsm_decrypt_failed',
      `member '${member}': AES-GCM decryption failed (${error.pkcs11?.ckr ?? 'unknown'}): the ` +
        'ciphertext, tag, IV or additional authenticated data differ from what was encrypted',
      { member, pkcs11: error.pkcs11, cause: error, memberFault: false },
    )
  }
}

/**
 * Returns `length` random bytes from C_GenerateRandom. pkcs11js 2.1.7 has no asynchronous
 * variant of this call, so it runs on the event loop; callers bound `length`.
 */
export function generateRandom(
  pkcs11: pkcs11js.PKCS11,
  member: string,
  session: pkcs11js.Handle,
  length: number,
): Buffer {
  return callSync(member, 'C_GenerateRandom', () =>
    pkcs11.C_GenerateRandom(session, Buffer.alloc(length)),
  )
}
