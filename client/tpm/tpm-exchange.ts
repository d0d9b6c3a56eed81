import type { Logger } from '../../log/logger.js'
import { activateCredential, type ActivationChallenge } from './credential-activation.js'
import type { AttestedKey, TpmSettings } from './tpm-key.js'

/** Sends a request body with the given `tpm` field and returns the gateway's response. */
export type TpmRequestSender = (tpm: Record<string, unknown>) => Promise<Record<string, unknown>>

/**
 * Sends an enrollment or renewal request with the key's evidence. When the gateway responds with
 * a credential activation challenge (its EK certificate trust path), runs
 * TPM2_ActivateCredential and sends the same request again with the recovered secret in
 * `tpm.activation`. Returns the final response.
 */
export async function sendWithActivation(
  attested: AttestedKey,
  settings: TpmSettings,
  send: TpmRequestSender,
  logger: Logger,
): Promise<Record<string, unknown>> {
  const evidence = { ...attested.evidence }
  const answer = await send(evidence)
  const challenge = challengeOf(answer)
  if (challenge === undefined) return answer
  if (attested.ekAlgorithm === undefined) {
    throw new Error('the gateway sent an activation challenge, but the TPM has no EK certificate')
  }
  logger.info({ challenge_id: challenge.challenge_id }, 'running TPM credential activation')
  const secret = await activateCredential(settings, attested.ekAlgorithm, challenge)
  const activation = { challenge_id: challenge.challenge_id, secret: secret.toString('base64') }
  return send({ ...evidence, activation })
}

function challengeOf(answer: Record<string, unknown>): ActivationChallenge | undefined {
  const value = answer.activation
  if (value === undefined) return undefined
  const fields = value as Record<string, unknown>
  const valid =
    typeof value === 'object' &&
    value !== null &&
    typeof fields.challenge_id === 'string' &&
    typeof fields.credential_blob === 'string' &&
    typeof fields.encrypted_secret === 'string'
  if (!valid) throw new Error('the gateway sent an activation challenge with missing fields')
  return value as ActivationChallenge
}
