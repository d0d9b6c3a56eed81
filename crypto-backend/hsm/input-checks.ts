import { HsmError } from './errors.js'
import type { KeyRef } from './key-templates.js'
import { GCM_TAG_LENGTH } from './member-crypto.js'

/** Largest C_GenerateRandom request; the call runs on the event loop (no async variant). */
export const MAX_RANDOM_LENGTH = 65_536
/** Length of a SHA-256 digest, the input of signEcdsa and verifyEcdsa. */
export const SHA256_LENGTH = 32
/** Largest CKA_ID accepted; application keys use 16 bytes. */
const MAX_ID_LENGTH = 64
/** GCM accepts IVs from 1 byte; the upper bound only rejects nonsense input. */
const MAX_IV_LENGTH = 128

function invalid(message: string): HsmError {
  return new HsmError('hsm_operation_failed', message)
}

export function checkId(id: Buffer): void {
  if (!Buffer.isBuffer(id) || id.length === 0 || id.length > MAX_ID_LENGTH) {
    throw invalid(`invalid CKA_ID: expected 1 to ${MAX_ID_LENGTH} bytes`)
  }
}

export function checkRef(ref: KeyRef): void {
  checkId(ref.id)
  if (typeof ref.label !== 'string' || ref.label.length === 0) {
    throw invalid('invalid CKA_LABEL: expected a non-empty string')
  }
}

export function checkDigest(digest: Buffer): void {
  if (!Buffer.isBuffer(digest) || digest.length !== SHA256_LENGTH) {
    throw invalid(`invalid digest: expected a ${SHA256_LENGTH}-byte SHA-256 digest`)
  }
}

export function checkIv(iv: Buffer): void {
  if (!Buffer.isBuffer(iv) || iv.length === 0 || iv.length > MAX_IV_LENGTH) {
    throw invalid(`invalid AES-GCM IV: expected 1 to ${MAX_IV_LENGTH} bytes (12 recommended)`)
  }
}

export function checkCurve(curve: string): void {
  if (curve !== 'P-256') throw invalid(`unsupported curve ${curve}; use P-256`)
}

export function checkAesBits(bits: number): void {
  if (bits !== 256) throw invalid(`unsupported AES key size ${bits}; use 256`)
}

/** Rejects AES-GCM input that cannot even hold the 16-byte tag, as a failed decryption. */
export function checkGcmCiphertext(ciphertext: Buffer): void {
  if (!Buffer.isBuffer(ciphertext) || ciphertext.length < GCM_TAG_LENGTH) {
    throw new HsmError(
      'hsm_decrypt_failed',
      `AES-GCM input of ${ciphertext.length} bytes is shorter than the ${GCM_TAG_LENGTH}-byte tag`,
    )
  }
}

export function checkRandomLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > MAX_RANDOM_LENGTH) {
    throw invalid(
      `invalid random length ${length}: expected an integer from 1 to ${MAX_RANDOM_LENGTH}`,
    )
  }
}
