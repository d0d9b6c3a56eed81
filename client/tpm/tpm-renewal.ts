import type { AgentCredentials } from '../agent-files.js'
import type { Logger } from '../../log/logger.js'
import { createAttestedKey } from './tpm-key.js'
import { sendWithActivation } from './tpm-exchange.js'
import { fetchNonce, postJsonWithTpmKey } from './tpm-request.js'
import type { TpmAgentSettings } from './tpm-settings.js'
import { normalizeSerial } from '../../store/certificate-serial.js'

/**
 * Renews a TPM-enrolled certificate: a fresh nonce, a new TPM key certified over it, and the
 * request over mutual TLS with the current TPM key. Returns the new key file and the response.
 */
export async function renewWithTpm(
  options: { gateway: string; caPem: string; logger: Logger },
  current: AgentCredentials,
  settings: TpmAgentSettings,
): Promise<{ keyPem: string; answer: Record<string, unknown> }> {
  const nonce = await fetchNonce(settings.enrollGateway, options.caPem)
  const attested = await createAttestedKey(settings, nonce)
  options.logger.info(
    { serial: normalizeSerial(current.leaf.serialNumber) },
    'new TPM key certified; sending renewal request',
  )
  const answer = await sendWithActivation(
    attested,
    settings,
    (tpm) =>
      postJsonWithTpmKey(
        new URL('/v1/certs/renew', options.gateway).toString(),
        { certificate: current.leaf.toString(), csr: attested.csrPem, tpm },
        { ca: options.caPem, cert: current.chainPem, keyPem: current.keyPem },
        settings.tcti,
      ),
    options.logger,
  )
  return { keyPem: attested.keyPem, answer }
}
