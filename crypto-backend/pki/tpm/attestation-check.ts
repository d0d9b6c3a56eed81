import { createHash } from 'node:crypto'
import type { TpmRecords } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'
import { base64Field, optionalBase64Field, rejectUnknownFields } from '../../request-body.js'
import { parseCertifyAttestation, type CertifyAttestation } from './tpm-attest.js'
import { TPMA_OBJECT } from './tpm-constants.js'
import { parseTpmPublic, requireAttributes, type TpmPublic } from './tpm-public.js'
import { TpmFormatError } from './tpm-reader.js'
import { parseEcdsaSignature, verifyEcdsaSignature } from './tpm-signature.js'

/** Attributes a client key needs to count as TPM-resident: created inside, never leaves. */
const CLIENT_KEY_REQUIRED =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.sign
/** A restricted key cannot sign TLS handshakes, and a decrypt key is not a signing-only key. */
const CLIENT_KEY_FORBIDDEN = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt

/**
 * Attributes of an attestation key. `restricted` and `sign` make the TPM refuse to sign data
 * that starts with TPM_GENERATED_VALUE unless the TPM produced it, so a signed TPMS_ATTEST from
 * such a key is a statement of the TPM itself.
 */
const AK_REQUIRED =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign
const AK_FORBIDDEN = TPMA_OBJECT.decrypt

/** The answer to a credential activation challenge: the challenge id and the secret. */
export interface ActivationAnswer {
  readonly challengeId: string
  readonly secret: Buffer
}

/** The `tpm` object of an enrollment or renewal request, decoded. */
export interface TpmEvidence {
  /** TPMS_ATTEST from TPM2_Certify of the client key by the attestation key. */
  readonly attest: Buffer
  /** TPMT_SIGNATURE of the attestation key over `attest`. */
  readonly signature: Buffer
  /** TPMT_PUBLIC of the client key. */
  readonly publicArea: Buffer
  /** TPMT_PUBLIC of the attestation key. */
  readonly akPublicArea: Buffer
  /** DER EK certificate from the TPM's NV storage, for the EK certificate trust path. */
  readonly ekCertificate?: Buffer
  /** The answer to the challenge that a previous request with this evidence received. */
  readonly activation?: ActivationAnswer
}

/** A verified attestation whose nonce has yet to be redeemed. */
export interface VerifiedAttestation {
  /** Hex TPM name of the attestation key. */
  readonly akName: string
  /** Hex SHA-256 of the nonce in extraData, as the store keys it. */
  readonly nonceHash: string
}

const FIELDS = ['attest', 'signature', 'public', 'ak_public', 'ek_certificate', 'activation']

/** Challenge ids are 16 random bytes in hex. */
const CHALLENGE_ID = /^[0-9a-f]{32}$/

/**
 * Decodes the request's `tpm` field: an object of four base64 fields, an optional base64
 * `ek_certificate` and an optional `activation` answer. Throws ApiError 400.
 */
export function parseTpmEvidence(value: unknown): TpmEvidence {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`field 'tpm' must be an object with the fields ${FIELDS.join(', ')}`)
  }
  const fields = value as Record<string, unknown>
  rejectUnknownFields(fields, FIELDS)
  const ekCertificate = optionalBase64Field(fields, 'ek_certificate')
  const activation = parseActivation(fields.activation)
  return {
    attest: base64Field(fields, 'attest'),
    signature: base64Field(fields, 'signature'),
    publicArea: base64Field(fields, 'public'),
    akPublicArea: base64Field(fields, 'ak_public'),
    ...(ekCertificate === undefined ? {} : { ekCertificate }),
    ...(activation === undefined ? {} : { activation }),
  }
}

function parseActivation(value: unknown): ActivationAnswer | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid("field 'tpm.activation' must be an object with 'challenge_id' and 'secret'")
  }
  const fields = value as Record<string, unknown>
  rejectUnknownFields(fields, ['challenge_id', 'secret'])
  const challengeId = fields.challenge_id
  if (typeof challengeId !== 'string' || !CHALLENGE_ID.test(challengeId)) {
    throw invalid("field 'tpm.activation.challenge_id' must be the challenge id the gateway sent")
  }
  return { challengeId, secret: base64Field(fields, 'secret') }
}

/**
 * Verifies that the CSR's key lives in a TPM: the attestation key is registered for `host`,
 * its signature over the TPMS_ATTEST verifies, the TPMS_ATTEST certifies the TPMT_PUBLIC the
 * client sent, whose attributes make the key non-exportable and whose point is the CSR's key.
 * Changes no state; the caller redeems the nonce with redeemAttestationNonce. Throws ApiError.
 */
export async function verifyTpmAttestation(
  evidence: TpmEvidence,
  csrSpki: Buffer,
  host: string,
  records: Pick<TpmRecords, 'attestationKey'>,
): Promise<VerifiedAttestation> {
  const akName = parsed(() =>
    parseTpmPublic(evidence.akPublicArea, 'attestation key public area'),
  ).name.toString('hex')
  if (!(await isRegistered(akName, host, records))) throw unregistered(akName, host)
  return verifyCertifyEvidence(evidence, csrSpki)
}

/**
 * Verifies the evidence as verifyTpmAttestation does, except whether the attestation key is
 * trusted: the caller establishes that by registration or by credential activation.
 */
export function verifyCertifyEvidence(evidence: TpmEvidence, csrSpki: Buffer): VerifiedAttestation {
  const ak = parsed(() => parseTpmPublic(evidence.akPublicArea, 'attestation key public area'))
  const key = parsed(() => parseTpmPublic(evidence.publicArea, 'client key public area'))
  const attest = parsed(() => parseCertifyAttestation(evidence.attest))
  const signature = parsed(() => parseEcdsaSignature(evidence.signature))
  const akName = ak.name.toString('hex')
  attributes(() => requireAttributes(ak, AK_REQUIRED, AK_FORBIDDEN, 'the attestation key'))
  if (!parsed(() => verifyEcdsaSignature(ak.publicKey, evidence.attest, signature))) {
    throw new ApiError(
      403,
      'attestation_signature_invalid',
      `the signature over the certify info does not verify with attestation key ${akName}`,
    )
  }
  checkCertifiedKey(attest, key, csrSpki)
  if (attest.extraData.length === 0) {
    throw invalid('the certify info has no nonce; certify with the nonce from /v1/enroll/nonce')
  }
  const nonceHash = createHash('sha256').update(attest.extraData).digest('hex')
  return { akName, nonceHash }
}

/** Redeems the attestation's nonce once; throws ApiError 403 for an unknown, used or expired one. */
export async function redeemAttestationNonce(
  verified: VerifiedAttestation,
  records: Pick<TpmRecords, 'redeemNonce'>,
): Promise<void> {
  const redemption = await records.redeemNonce(verified.nonceHash, new Date().toISOString())
  if (redemption.ok) return
  const messages = {
    unknown: 'the nonce in the certify info was not issued by this gateway or has expired',
    used: 'the nonce in the certify info was already used; each attestation needs a fresh nonce',
    expired: 'the nonce in the certify info has expired; request a new one and certify again',
  } as const
  throw new ApiError(403, `nonce_${redemption.reason}`, messages[redemption.reason])
}

/** Returns true when an operator registered the attestation key `akName` for `host`. */
export async function isRegistered(
  akName: string,
  host: string,
  records: Pick<TpmRecords, 'attestationKey'>,
): Promise<boolean> {
  const registered = await records.attestationKey(akName)
  return registered !== undefined && registered.host === host
}

/** The error for an attestation key that is not registered for the host. */
export function unregistered(akName: string, host: string, hint = ''): ApiError {
  return new ApiError(
    403,
    'attestation_key_unknown',
    `attestation key ${akName} is not registered for host '${host}'; an operator registers ` +
      `it with 'hsmgate tpm register-ak --host ${host} --ak-public FILE'${hint}`,
  )
}

function checkCertifiedKey(attest: CertifyAttestation, key: TpmPublic, csrSpki: Buffer): void {
  if (!attest.certifiedName.equals(key.name)) {
    throw new ApiError(
      403,
      'attestation_mismatch',
      `the certified name ${attest.certifiedName.toString('hex')} is not the name ` +
        `${key.name.toString('hex')} of the client key public area`,
    )
  }
  attributes(() =>
    requireAttributes(key, CLIENT_KEY_REQUIRED, CLIENT_KEY_FORBIDDEN, 'the client key'),
  )
  const spki = key.publicKey.export({ type: 'spki', format: 'der' })
  if (!spki.equals(csrSpki)) {
    throw new ApiError(
      403,
      'attestation_mismatch',
      'the CSR public key is not the key that the TPM certified',
    )
  }
}

function parsed<T>(parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    if (error instanceof TpmFormatError) throw invalid(error.message)
    throw error
  }
}

function attributes(check: () => void): void {
  try {
    check()
  } catch (error) {
    if (!(error instanceof TpmFormatError)) throw error
    throw new ApiError(403, 'attestation_key_attributes', error.message)
  }
}

function invalid(message: string): ApiError {
  return new ApiError(400, 'attestation_invalid', message)
}
