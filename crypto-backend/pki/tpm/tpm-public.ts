import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { NAME_ALGORITHMS, TPM_ALG, TPM_ECC_NIST_P256, describeAttributes } from './tpm-constants.js'
import { TpmFormatError, TpmReader } from './tpm-reader.js'

/** Upper bound on a marshalled TPMT_PUBLIC; an ECC P-256 area is about 90 bytes. */
const MAX_PUBLIC_BYTES = 1024

/** An ECC P-256 TPMT_PUBLIC after parsing, with its TPM name. */
export interface TpmPublic {
  readonly nameAlg: number
  readonly attributes: number
  readonly authPolicy: Buffer
  /** Signing scheme of the key: TPM_ALG_NULL or TPM_ALG_ECDSA. */
  readonly scheme: number
  /** Hash of the signing scheme, or TPM_ALG_NULL when the scheme is NULL. */
  readonly schemeHash: number
  readonly publicKey: KeyObject
  /** nameAlg (2 bytes) followed by the nameAlg digest of the marshalled TPMT_PUBLIC. */
  readonly name: Buffer
}

/**
 * Parses a marshalled TPMT_PUBLIC of an ECC NIST P-256 key and computes its TPM name. Other key
 * types, curves, symmetric or KDF settings are rejected, as are trailing bytes. Throws
 * TpmFormatError.
 */
export function parseTpmPublic(bytes: Buffer, what: string): TpmPublic {
  if (bytes.length > MAX_PUBLIC_BYTES) {
    throw new TpmFormatError(`${what}: ${bytes.length} bytes; the maximum is ${MAX_PUBLIC_BYTES}`)
  }
  const reader = new TpmReader(bytes, what)
  const type = reader.u16()
  if (type !== TPM_ALG.ecc) {
    throw new TpmFormatError(`${what}: key type 0x${hex16(type)} is not ECC; use an ECC P-256 key`)
  }
  const nameAlg = reader.u16()
  const digest = NAME_ALGORITHMS.get(nameAlg)
  if (digest === undefined) {
    throw new TpmFormatError(`${what}: nameAlg 0x${hex16(nameAlg)} is not SHA-256, -384 or -512`)
  }
  const attributes = reader.u32()
  const authPolicy = reader.sized('authPolicy', 64)
  const symmetric = reader.u16()
  if (symmetric !== TPM_ALG.null) {
    throw new TpmFormatError(`${what}: a signing key has symmetric algorithm TPM_ALG_NULL`)
  }
  const scheme = reader.u16()
  if (scheme !== TPM_ALG.null && scheme !== TPM_ALG.ecdsa) {
    throw new TpmFormatError(`${what}: scheme 0x${hex16(scheme)} is not ECDSA or NULL`)
  }
  const schemeHash = scheme === TPM_ALG.null ? TPM_ALG.null : reader.u16()
  const curve = reader.u16()
  if (curve !== TPM_ECC_NIST_P256) {
    throw new TpmFormatError(`${what}: curve 0x${hex16(curve)} is not NIST P-256`)
  }
  if (reader.u16() !== TPM_ALG.null) {
    throw new TpmFormatError(`${what}: the KDF scheme of a signing key is TPM_ALG_NULL`)
  }
  const x = reader.sized('unique.x', 32)
  const y = reader.sized('unique.y', 32)
  reader.end()
  const publicKey = eccPublicKey(x, y, what)
  const name = Buffer.concat([u16(nameAlg), createHash(digest.hash).update(bytes).digest()])
  return { nameAlg, attributes, authPolicy, scheme, schemeHash, publicKey, name }
}

/** Throws unless every bit in `required` is set and no bit in `forbidden` is. */
export function requireAttributes(
  key: TpmPublic,
  required: number,
  forbidden: number,
  what: string,
): void {
  const missing = required & ~key.attributes
  const present = forbidden & key.attributes
  if (missing !== 0 || present !== 0) {
    throw new TpmFormatError(
      `${what} has attributes ${describeAttributes(key.attributes)}` +
        (missing === 0 ? '' : `; missing ${describeAttributes(missing)}`) +
        (present === 0 ? '' : `; must not have ${describeAttributes(present)}`),
    )
  }
}

function eccPublicKey(x: Buffer, y: Buffer, what: string): KeyObject {
  if (x.length !== 32 || y.length !== 32) {
    throw new TpmFormatError(`${what}: P-256 coordinates are 32 bytes each`)
  }
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: x.toString('base64url'), y: y.toString('base64url') },
      format: 'jwk',
    })
  } catch {
    throw new TpmFormatError(`${what}: the ECC point is not on the P-256 curve`)
  }
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2)
  buffer.writeUInt16BE(value)
  return buffer
}

function hex16(value: number): string {
  return value.toString(16).padStart(4, '0')
}
