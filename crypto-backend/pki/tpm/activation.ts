import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { TpmRecords } from '../../../store/index.js'
import { ApiError } from '../../api-error.js'
import type { ActivationAnswer, VerifiedAttestation } from './attestation-check.js'
import type { TrustedEk } from './ek-certificate.js'
import { makeCredential } from './make-credential.js'
import { TpmFormatError } from './tpm-reader.js'

/** Secret size: the SHA-256 digest size, the largest credential an EK with nameAlg SHA-256 takes. */
const SECRET_BYTES = 32

/** How long the agent has to run TPM2_ActivateCredential and send its answer. */
export const CHALLENGE_LIFETIME_MS = 2 * 60_000

/** The challenge sent to the agent, in the JSON form of the response's `activation` field. */
export interface ChallengeMessage {
  readonly challenge_id: string
  /** Base64 TPM2B_ID_OBJECT. */
  readonly credential_blob: string
  /** Base64 TPM2B_ENCRYPTED_SECRET. */
  readonly encrypted_secret: string
  readonly expires_at: string
}

/**
 * Makes a credential for the attestation key under the EK of `ek` and stores the challenge,
 * bound to the attestation key, the attestation's nonce and the EK certificate. Only the
 * SHA-256 of the secret is stored. Throws ApiError 400 for an EK key type the gateway cannot
 * encrypt to.
 */
export async function issueActivationChallenge(
  ek: TrustedEk,
  verified: VerifiedAttestation,
  records: Pick<TpmRecords, 'putChallenge'>,
  now = new Date(),
): Promise<ChallengeMessage> {
  const secret = randomBytes(SECRET_BYTES)
  let made
  try {
    made = makeCredential(ek.certificate.publicKey, Buffer.from(verified.akName, 'hex'), secret)
  } catch (error) {
    if (!(error instanceof TpmFormatError)) throw error
    throw new ApiError(400, 'ek_certificate_invalid', error.message)
  }
  const id = randomBytes(16).toString('hex')
  const expiresAt = new Date(now.getTime() + CHALLENGE_LIFETIME_MS).toISOString()
  await records.putChallenge({
    id,
    secretHash: sha256(secret),
    akName: verified.akName,
    nonceHash: verified.nonceHash,
    ekFingerprint: ek.fingerprint,
    issuedAt: now.toISOString(),
    expiresAt,
  })
  return {
    challenge_id: id,
    credential_blob: made.credentialBlob.toString('base64'),
    encrypted_secret: made.encryptedSecret.toString('base64'),
    expires_at: expiresAt,
  }
}

/**
 * Checks an answer to a challenge. The challenge is used up by this call whatever the outcome,
 * and the answer counts only for the attestation key, nonce and EK certificate it was made
 * for. Throws ApiError 403 for an unknown, used or expired challenge or a wrong answer.
 */
export async function checkActivationAnswer(
  answer: ActivationAnswer,
  ek: TrustedEk,
  verified: VerifiedAttestation,
  records: Pick<TpmRecords, 'takeChallenge'>,
  now = new Date(),
): Promise<void> {
  const taken = await records.takeChallenge(answer.challengeId, now.toISOString())
  if (!taken.ok) {
    const messages = {
      unknown: 'the activation challenge was not issued by this gateway',
      used:
        'the activation challenge was already answered; send the request again without ' +
        "'activation' for a new challenge",
      expired:
        'the activation challenge has expired; send the request again without ' +
        "'activation' for a new challenge",
    } as const
    throw new ApiError(403, `activation_challenge_${taken.reason}`, messages[taken.reason])
  }
  const challenge = taken.challenge
  const bound =
    challenge.akName === verified.akName &&
    challenge.nonceHash === verified.nonceHash &&
    challenge.ekFingerprint === ek.fingerprint
  const expected = Buffer.from(challenge.secretHash, 'hex')
  const received = Buffer.from(sha256(answer.secret), 'hex')
  if (!bound || !timingSafeEqual(expected, received)) {
    throw new ApiError(
      403,
      'activation_failed',
      'the activation answer does not match the challenge; the attestation key and the EK ' +
        'must be in the same TPM, and the answer must come with the evidence it was made for',
    )
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}
