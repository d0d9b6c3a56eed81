import { verify, type KeyObject } from 'node:crypto'
import { NAME_ALGORITHMS, TPM_ALG } from './tpm-constants.js'
import { TpmFormatError, TpmReader } from './tpm-reader.js'

/** A TPMT_SIGNATURE with an ECDSA signature. */
export interface TpmEcdsaSignature {
  readonly hashAlg: number
  readonly r: Buffer
  readonly s: Buffer
}

/** Parses a marshalled TPMT_SIGNATURE of algorithm ECDSA. Throws TpmFormatError. */
export function parseEcdsaSignature(bytes: Buffer): TpmEcdsaSignature {
  const what = 'signature (TPMT_SIGNATURE)'
  const reader = new TpmReader(bytes, what)
  const sigAlg = reader.u16()
  if (sigAlg !== TPM_ALG.ecdsa) {
    throw new TpmFormatError(`${what}: sigAlg 0x${sigAlg.toString(16)} is not ECDSA 0x18`)
  }
  const hashAlg = reader.u16()
  const r = reader.sized('signatureR', 32)
  const s = reader.sized('signatureS', 32)
  reader.end()
  return { hashAlg, r, s }
}

/**
 * Returns true when `signature` is a valid ECDSA P-256 signature by `key` over `message`, with
 * the signature's own hash algorithm, which must be SHA-256, -384 or -512.
 */
export function verifyEcdsaSignature(
  key: KeyObject,
  message: Buffer,
  signature: TpmEcdsaSignature,
): boolean {
  const hash = NAME_ALGORITHMS.get(signature.hashAlg)
  if (hash === undefined) {
    throw new TpmFormatError(
      `signature hash 0x${signature.hashAlg.toString(16)} is not SHA-256, -384 or -512`,
    )
  }
  const p1363 = Buffer.concat([leftPad(signature.r), leftPad(signature.s)])
  return verify(hash.hash, message, { key, dsaEncoding: 'ieee-p1363' }, p1363)
}

function leftPad(value: Buffer): Buffer {
  return Buffer.concat([Buffer.alloc(32 - value.length), value])
}
