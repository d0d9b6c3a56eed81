import type { Logger } from '../../../log/logger.js'
import type { KeyProtection, TpmRecords } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'
import {
  checkActivationAnswer,
  issueActivationChallenge,
  type ChallengeMessage,
} from './activation.js'
import {
  isRegistered,
  parseTpmEvidence,
  redeemAttestationNonce,
  unregistered,
  verifyCertifyEvidence,
  type TpmEvidence,
  type VerifiedAttestation,
} from './attestation-check.js'
import { verifyEkCertificate } from './ek-certificate.js'
import { DEFAULT_TPM_TRUST, type TpmTrust } from './tpm-trust.js'

/** Where a request comes from, for the log lines of rejected attestations. */
export interface AttestationContext {
  readonly host: string
  readonly decisionId: string
  readonly logger: Logger
}

/**
 * The result for a request: the key protection it proves, or a credential activation challenge
 * that the client answers by sending the same request again with `tpm.activation`.
 */
export type AttestationOutcome =
  { readonly protection: KeyProtection } | { readonly challenge: ChallengeMessage }

type Records = Pick<TpmRecords, 'attestationKey' | 'redeemNonce' | 'putChallenge' | 'takeChallenge'>

/**
 * Returns what an enrollment or renewal request proves. Without a `tpm` field that is 'software'.
 * With one, the attestation must verify and its attestation key must be trusted by `trust.mode`:
 * registered for the host, or shown by credential activation to share a TPM with an EK whose
 * certificate chains to a manufacturer CA. The first request on the EK path returns a challenge;
 * the second, with the answer, returns 'tpm'. The nonce is redeemed only when 'tpm' is returned.
 * An invalid attestation throws ApiError and is logged with the decision id; it never falls back
 * to 'software'.
 */
export async function attestedProtection(
  tpm: unknown,
  csrSpki: Buffer,
  records: Records,
  context: AttestationContext,
  trust: TpmTrust = DEFAULT_TPM_TRUST,
): Promise<AttestationOutcome> {
  if (tpm === undefined) return { protection: 'software' }
  try {
    const evidence = parseTpmEvidence(tpm)
    const verified = verifyCertifyEvidence(evidence, csrSpki)
    const registered =
      trust.mode !== 'ek-certificate' &&
      (await isRegistered(verified.akName, context.host, records))
    if (!registered) {
      const challenge = await activate(evidence, verified, records, context, trust)
      if (challenge !== undefined) return { challenge }
    }
    await redeemAttestationNonce(verified, records)
    context.logger.info(
      {
        decision_id: context.decisionId,
        host: context.host,
        ak: verified.akName,
        trust: registered ? 'registered-ak' : 'ek-certificate',
      },
      'TPM attestation verified',
    )
    return { protection: 'tpm' }
  } catch (error) {
    if (error instanceof ApiError) {
      context.logger.warn(
        {
          decision_id: context.decisionId,
          host: context.host,
          code: error.code,
          detail: error.message,
        },
        'TPM attestation rejected',
      )
    }
    throw error
  }
}

/**
 * Runs the EK certificate path for an attestation key that is not registered: returns a new
 * challenge when the evidence has no answer, checks the answer when it has one and returns
 * undefined then. Throws ApiError when this path is not enabled or fails.
 */
async function activate(
  evidence: TpmEvidence,
  verified: VerifiedAttestation,
  records: Records,
  context: AttestationContext,
  trust: TpmTrust,
): Promise<ChallengeMessage | undefined> {
  if (trust.mode === 'registered-ak') throw unregistered(verified.akName, context.host)
  if (evidence.ekCertificate === undefined) {
    const hint = ", or send the TPM's EK certificate in 'tpm.ek_certificate'"
    if (trust.mode === 'either') throw unregistered(verified.akName, context.host, hint)
    throw new ApiError(
      403,
      'ek_certificate_untrusted',
      'this gateway trusts attestation keys by EK certificate, and the request has no ' +
        "'tpm.ek_certificate'; the agent reads it from the TPM's NV index 0x01c00002 (RSA EK) " +
        'or 0x01c0000a (ECC EK)',
    )
  }
  const ek = verifyEkCertificate(evidence.ekCertificate, trust.manufacturerCas)
  if (evidence.activation === undefined) {
    const challenge = await issueActivationChallenge(ek, verified, records)
    context.logger.info(
      {
        decision_id: context.decisionId,
        host: context.host,
        ak: verified.akName,
        ek_certificate: ek.fingerprint,
        challenge_id: challenge.challenge_id,
      },
      'credential activation challenge issued',
    )
    return challenge
  }
  await checkActivationAnswer(evidence.activation, ek, verified, records)
  return undefined
}
