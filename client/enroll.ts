import { X509Certificate } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import { agentPaths, writeCredentials } from './agent-files.js'
import { ensurePrivateDir } from './atomic-files.js'
import { postJson } from './gateway-client.js'
import { newKeyAndCsr, type AgentKeyType } from './key-material.js'
import { createAttestedKey, type AttestedKey, type TpmSettings } from './tpm/tpm-key.js'
import { sendWithActivation } from './tpm/tpm-exchange.js'
import { fetchNonce } from './tpm/tpm-request.js'
import { writeTpmSettings } from './tpm/tpm-settings.js'
import { normalizeSerial } from '../store/certificate-serial.js'

export interface EnrollOptions {
  /** Base URL of the gateway's enrollment listener, such as https://gateway:8444. */
  readonly gateway: string
  /** PEM of the CA that issued the gateway's serving certificate. */
  readonly caPem: string
  readonly token: string
  readonly dir: string
  readonly keyType: AgentKeyType
  /** Create the key in this TPM and attest it, instead of generating a software key. */
  readonly tpm?: TpmSettings
  readonly logger: Logger
}

/** Result of an enrollment, printed on the command's stdout. */
export interface EnrollResult {
  readonly serial: string
  readonly notAfter: string
  readonly key: string
  readonly cert: string
}

/**
 * Generates a key, sends its CSR with the token to POST /v1/enroll and writes the key and the
 * returned certificate chain to `dir`. The directory is checked before the token is spent, so a
 * failure there does not waste it. The token is never logged.
 */
export async function enroll(options: EnrollOptions): Promise<EnrollResult> {
  const { logger } = options
  ensurePrivateDir(options.dir)
  const material = await enrollmentKey(options)
  logger.info({ key_type: material.keyType }, 'key generated; sending enrollment request')
  const send = (extra: Record<string, unknown>) =>
    postJson(
      new URL('/v1/enroll', options.gateway).toString(),
      { token: options.token, csr: material.csrPem, ...extra },
      { ca: options.caPem },
    )
  const answer =
    material.attested === undefined || options.tpm === undefined
      ? await send({})
      : await sendWithActivation(material.attested, options.tpm, (tpm) => send({ tpm }), logger)
  const chain = certificateOf(answer)
  writeCredentials(options.dir, material.keyPem, chain)
  if (options.tpm !== undefined) {
    writeTpmSettings(options.dir, { ...options.tpm, enrollGateway: options.gateway })
  }
  const leaf = new X509Certificate(chain)
  const paths = agentPaths(options.dir)
  const serial = normalizeSerial(leaf.serialNumber)
  logger.info({ serial, not_after: leaf.validTo }, 'enrolled; files written')
  return { serial, notAfter: new Date(leaf.validTo).toISOString(), ...paths }
}

/**
 * Returns the key and CSR to enroll: a software key, or a TPM key certified over a nonce from
 * the gateway, whose evidence goes into the request's `tpm` field.
 */
async function enrollmentKey(
  options: EnrollOptions,
): Promise<{ keyPem: string; csrPem: string; keyType: string; attested?: AttestedKey }> {
  if (options.tpm === undefined) {
    const material = await newKeyAndCsr(options.keyType)
    return { ...material, keyType: options.keyType }
  }
  const nonce = await fetchNonce(options.gateway, options.caPem, options.token)
  const attested = await createAttestedKey(options.tpm, nonce)
  return { ...attested, keyType: 'tpm-ec-p256', attested }
}

/** Returns the PEM chain of an enrollment or renewal response, or throws when it is missing. */
export function certificateOf(answer: Record<string, unknown>): string {
  const pem = answer.certificate
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error('the gateway response contains no certificate')
  }
  return pem
}
