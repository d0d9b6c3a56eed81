import { TPM_GENERATED_VALUE, TPM_ST_ATTEST_CERTIFY } from './tpm-constants.js'
import { TpmFormatError, TpmReader } from './tpm-reader.js'

/** Upper bound on a TPMS_ATTEST; TPM2B_ATTEST holds at most sizeof(TPMS_ATTEST). */
const MAX_ATTEST_BYTES = 1024
/** Upper bound on a TPM2B_NAME: a 2-byte algorithm and a SHA-512 digest. */
const MAX_NAME_BYTES = 66
/** Upper bound on TPM2B_DATA extraData: the largest digest size. */
const MAX_EXTRA_DATA_BYTES = 64

/** A TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY. */
export interface CertifyAttestation {
  /** Qualified name of the key that signed the structure. */
  readonly qualifiedSigner: Buffer
  /** The caller's qualifying data: the gateway's nonce. */
  readonly extraData: Buffer
  readonly clock: bigint
  readonly resetCount: number
  readonly restartCount: number
  readonly safe: boolean
  readonly firmwareVersion: bigint
  /** Name of the certified object. */
  readonly certifiedName: Buffer
  readonly certifiedQualifiedName: Buffer
}

/**
 * Parses a marshalled TPMS_ATTEST and checks that it is a TPM-generated certification: magic
 * TPM_GENERATED_VALUE and type TPM_ST_ATTEST_CERTIFY. Throws TpmFormatError.
 */
export function parseCertifyAttestation(bytes: Buffer): CertifyAttestation {
  const what = 'certify info (TPMS_ATTEST)'
  if (bytes.length > MAX_ATTEST_BYTES) {
    throw new TpmFormatError(`${what}: ${bytes.length} bytes; the maximum is ${MAX_ATTEST_BYTES}`)
  }
  const reader = new TpmReader(bytes, what)
  const magic = reader.u32()
  if (magic !== TPM_GENERATED_VALUE) {
    throw new TpmFormatError(
      `${what}: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE 0xff544347`,
    )
  }
  const type = reader.u16()
  if (type !== TPM_ST_ATTEST_CERTIFY) {
    throw new TpmFormatError(
      `${what}: type 0x${type.toString(16)} is not TPM_ST_ATTEST_CERTIFY 0x8017`,
    )
  }
  const qualifiedSigner = reader.sized('qualifiedSigner', MAX_NAME_BYTES)
  const extraData = reader.sized('extraData', MAX_EXTRA_DATA_BYTES)
  const clock = reader.u64()
  const resetCount = reader.u32()
  const restartCount = reader.u32()
  const safe = reader.u8()
  if (safe > 1) throw new TpmFormatError(`${what}: clockInfo.safe is ${safe}, not 0 or 1`)
  const firmwareVersion = reader.u64()
  const certifiedName = reader.sized('attested.name', MAX_NAME_BYTES)
  const certifiedQualifiedName = reader.sized('attested.qualifiedName', MAX_NAME_BYTES)
  reader.end()
  return {
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe: safe === 1,
    firmwareVersion,
    certifiedName,
    certifiedQualifiedName,
  }
}
