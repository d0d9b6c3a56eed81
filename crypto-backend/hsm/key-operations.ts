import pkcs11js from 'pkcs11js'
import type { HsmCluster } from './cluster.js'
import { HsmError, callAsync, callSync } from './errors.js'
import * as checks from './input-checks.js'
import { destroyQuietly } from './object-search.js'

/**
 * Generic single-part operations on a key of the cluster: sign, verify, decrypt and the wrapping
 * of caller-supplied key material. Each runs on one member with one retry on a member fault, so
 * each must be idempotent, which all of them are.
 */

/** Output buffer for C_Sign: large enough for RSA-4096 (512 bytes) and every other mechanism. */
const SIGNATURE_BUFFER_LENGTH = 512
/** Output buffer for C_Decrypt with raw RSA and for C_WrapKey of up to 1 KiB of material. */
const OUTPUT_BUFFER_LENGTH = 2048

/** CK_RV values that mean "this input does not verify or decrypt", never a member fault. */
const INPUT_REJECTIONS = new Set<number>([
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
  pkcs11js.CKR_WRAPPED_KEY_INVALID,
  pkcs11js.CKR_WRAPPED_KEY_LEN_RANGE,
  pkcs11js.CKR_DATA_LEN_RANGE,
  pkcs11js.CKR_DATA_INVALID,
])

const SIGNATURE_REJECTIONS = new Set<number>([
  pkcs11js.CKR_SIGNATURE_INVALID,
  pkcs11js.CKR_SIGNATURE_LEN_RANGE,
])

/** Part of a key that an operation uses, which selects the CKO class of the object. */
export type KeyPart = 'private' | 'public' | 'secret'

const CLASS_OF: Record<KeyPart, number> = {
  private: pkcs11js.CKO_PRIVATE_KEY,
  public: pkcs11js.CKO_PUBLIC_KEY,
  secret: pkcs11js.CKO_SECRET_KEY,
}

/** Signs `data` (a message or a digest, as the mechanism expects) with C_Sign. */
export function sign(
  cluster: HsmCluster,
  key: { id: Buffer; part: KeyPart },
  mechanism: pkcs11js.Mechanism,
  data: Buffer,
): Promise<Buffer> {
  checks.checkId(key.id)
  return cluster.onKey({ id: key.id, objectClass: CLASS_OF[key.part] }, 'sign', (m, s, k) => {
    callSync(m.name, 'C_SignInit', () => m.pkcs11.C_SignInit(s, mechanism, k))
    const output = Buffer.alloc(SIGNATURE_BUFFER_LENGTH)
    return callAsync(m.name, 'C_Sign', () => m.pkcs11.C_SignAsync(s, data, output))
  })
}

/** Verifies a signature or MAC with C_Verify; a signature that does not verify is false. */
export function verify(
  cluster: HsmCluster,
  key: { id: Buffer; part: KeyPart },
  mechanism: pkcs11js.Mechanism,
  data: Buffer,
  signature: Buffer,
): Promise<boolean> {
  checks.checkId(key.id)
  if (signature.length === 0 || signature.length > SIGNATURE_BUFFER_LENGTH) {
    return Promise.resolve(false)
  }
  const selector = { id: key.id, objectClass: CLASS_OF[key.part] }
  return cluster.onKey(selector, 'verify', async (m, s, k) => {
    callSync(m.name, 'C_VerifyInit', () => m.pkcs11.C_VerifyInit(s, mechanism, k))
    try {
      return await callAsync(m.name, 'C_Verify', () => m.pkcs11.C_VerifyAsync(s, data, signature))
    } catch (error) {
      if (error instanceof HsmError && SIGNATURE_REJECTIONS.has(error.pkcs11?.value ?? 0)) {
        return false
      }
      throw error
    }
  })
}

/** Decrypts with the private key (C_Decrypt); input the key rejects is 'hsm_decrypt_failed'. */
export function decryptWithPrivateKey(
  cluster: HsmCluster,
  id: Buffer,
  mechanism: pkcs11js.Mechanism,
  data: Buffer,
): Promise<Buffer> {
  checks.checkId(id)
  const selector = { id, objectClass: pkcs11js.CKO_PRIVATE_KEY }
  return cluster.onKey(selector, 'decrypt', (m, s, k) =>
    rejectingInput(m.name, 'decryption', async () => {
      callSync(m.name, 'C_DecryptInit', () => m.pkcs11.C_DecryptInit(s, mechanism, k))
      const output = Buffer.alloc(OUTPUT_BUFFER_LENGTH)
      return callAsync(m.name, 'C_Decrypt', () => m.pkcs11.C_DecryptAsync(s, data, output))
    }),
  )
}

/** CKM_AES_KEY_WRAP_PAD (RFC 5649), the mechanism of wrap and unwrap. */
const KWP: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }

/** Template of the session object for caller material; it never becomes a token object. */
function materialTemplate(value?: Buffer): pkcs11js.Template {
  const template: pkcs11js.Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_SENSITIVE, value: false },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
  ]
  if (value !== undefined) template.push({ type: pkcs11js.CKA_VALUE, value })
  return template
}

/**
 * Wraps caller-supplied key material under a wrapping key with CKM_AES_KEY_WRAP_PAD: the
 * material becomes a session object, C_WrapKey wraps it and the object is destroyed.
 */
export function wrapMaterial(cluster: HsmCluster, id: Buffer, material: Buffer): Promise<Buffer> {
  checks.checkId(id)
  const selector = { id, objectClass: pkcs11js.CKO_SECRET_KEY }
  return cluster.onKey(selector, 'wrap', async (m, s, k) => {
    const object = callSync(m.name, 'C_CreateObject', () =>
      m.pkcs11.C_CreateObject(s, materialTemplate(material)),
    )
    try {
      const output = Buffer.alloc(OUTPUT_BUFFER_LENGTH)
      return await callAsync(m.name, 'C_WrapKey', () =>
        m.pkcs11.C_WrapKeyAsync(s, KWP, k, object, output),
      )
    } finally {
      destroyQuietly(m.pkcs11, s, object)
    }
  })
}

/**
 * Unwraps material wrapped by `wrapMaterial` into a session object (never a token object), reads
 * its value and destroys it. Input that fails the RFC 5649 integrity check is
 * 'hsm_decrypt_failed'.
 */
export function unwrapMaterial(cluster: HsmCluster, id: Buffer, wrapped: Buffer): Promise<Buffer> {
  checks.checkId(id)
  const selector = { id, objectClass: pkcs11js.CKO_SECRET_KEY }
  return cluster.onKey(selector, 'unwrap', (m, s, k) =>
    rejectingInput(m.name, 'unwrapping', async () => {
      const object = await callAsync(m.name, 'C_UnwrapKey', () =>
        m.pkcs11.C_UnwrapKeyAsync(s, KWP, k, wrapped, materialTemplate()),
      )
      try {
        const [value] = callSync(m.name, 'C_GetAttributeValue', () =>
          m.pkcs11.C_GetAttributeValue(s, object, [{ type: pkcs11js.CKA_VALUE }]),
        )
        return Buffer.from(value?.value as Buffer)
      } finally {
        destroyQuietly(m.pkcs11, s, object)
      }
    }),
  )
}

/**
 * Runs a decryption-like call and reports CK_RVs that mean bad input as 'hsm_decrypt_failed',
 * which is no member fault. SoftHSM2 reports several of them as CKR_GENERAL_ERROR, so a real
 * device fault during such a call is not noticed here either; the health check notices it.
 */
async function rejectingInput<T>(member: string, what: string, action: () => Promise<T>) {
  try {
    return await action()
  } catch (error) {
    if (!(error instanceof HsmError) || !INPUT_REJECTIONS.has(error.pkcs11?.value ?? 0)) {
      throw error
    }
    throw new HsmError(
      'hsm_decrypt_failed',
      `member '${member}': ${what} failed (${error.pkcs11?.ckr ?? 'unknown'})`,
      { member, pkcs11: error.pkcs11, cause: error, memberFault: false },
    )
  }
}
