import { execFile } from 'node:child_process'
import type { Logger } from '../log/logger.js'
import { readCredentials, writeCredentials, type AgentCredentials } from './agent-files.js'
import { backoffDelay, DEFAULT_RENEW_AT, renewalDue, type BackoffPolicy } from './backoff.js'
import { certificateOf } from './enroll.js'
import { GatewayError, postJson } from './gateway-client.js'
import { newKeyAndCsr, type AgentKeyType } from './key-material.js'
import { renewWithTpm } from './tpm/tpm-renewal.js'
import { readTpmSettings } from './tpm/tpm-settings.js'
import { normalizeSerial } from '../store/certificate-serial.js'

/** Upper bound on the reload command's run time. */
const RELOAD_TIMEOUT_MS = 60_000

export interface RenewOptions {
  /** Base URL of the gateway's main mTLS listener. */
  readonly gateway: string
  readonly caPem: string
  readonly dir: string
  readonly keyType: AgentKeyType
  /** Shell command run after new files are written, such as 'systemctl reload app'. */
  readonly reloadCommand?: string
  /** Fraction of the certificate's lifetime after which it is renewed; two thirds by default. */
  readonly renewAt?: number
  readonly logger: Logger
}

/** A renewal that the gateway rejected for a reason a retry cannot fix, such as revocation. */
export class RenewalRejectedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'RenewalRejectedError'
  }
}

/** The agent received a stop signal while it waited to retry a renewal. */
export class AgentStoppedError extends Error {
  constructor() {
    super('stopped while waiting to retry the renewal')
    this.name = 'AgentStoppedError'
  }
}

/**
 * Renews once: a new key and CSR, sent over mTLS with the current certificate, whose PEM the
 * body carries so the gateway can match it to the connection. In a directory that
 * 'hsmgate agent enroll --tpm' made, the new key is a TPM key with a fresh attestation. The new
 * pair replaces the old files, then the reload command runs. Returns the new certificate's
 * expiry.
 */
export async function renewOnce(options: RenewOptions): Promise<Date> {
  const { logger } = options
  const current = readCredentials(options.dir)
  const tpm = readTpmSettings(options.dir)
  const { keyPem, answer } =
    tpm === undefined
      ? await requestSoftwareRenewal(options, current)
      : await renewWithTpm(options, current, tpm)
  const chain = certificateOf(answer)
  writeCredentials(options.dir, keyPem, chain)
  const next = readCredentials(options.dir).leaf
  logger.info(
    { serial: normalizeSerial(next.serialNumber), not_after: next.validTo },
    'renewed; files written',
  )
  if (options.reloadCommand !== undefined) await runReload(options.reloadCommand, logger)
  return new Date(next.validTo)
}

/** Sends a renewal request with a new software key over mTLS with the current one. */
async function requestSoftwareRenewal(
  options: RenewOptions,
  current: AgentCredentials,
): Promise<{ keyPem: string; answer: Record<string, unknown> }> {
  const material = await newKeyAndCsr(options.keyType)
  options.logger.info(
    { serial: normalizeSerial(current.leaf.serialNumber) },
    'new key generated; sending renewal request',
  )
  const answer = await postJson(
    new URL('/v1/certs/renew', options.gateway).toString(),
    { certificate: current.leaf.toString(), csr: material.csrPem },
    { ca: options.caPem, cert: current.chainPem, key: current.keyPem },
  )
  return { keyPem: material.keyPem, answer }
}

/**
 * Returns when the certificate in `dir` is due for renewal (after `renewAt` of its lifetime),
 * when it expires and its serial.
 */
export function schedule(
  dir: string,
  renewAt: number = DEFAULT_RENEW_AT,
): { due: Date; expires: Date; serial: string } {
  const leaf = readCredentials(dir).leaf
  const notBefore = new Date(leaf.validFrom)
  const expires = new Date(leaf.validTo)
  return {
    due: renewalDue(notBefore, expires, renewAt),
    expires,
    serial: normalizeSerial(leaf.serialNumber),
  }
}

/**
 * Renews with retries. A transient failure (network, TLS, 5xx, 429) is retried after a capped
 * exponential backoff with jitter. Any other refusal, such as a revoked, superseded or expired
 * certificate, throws RenewalRejectedError at once, because a retry would be refused too.
 * Retries also stop after `maxAttempts`, or when the certificate would expire before the next
 * attempt, because renewal needs a valid one. `sleep` resolves false when the agent is
 * stopping, and then AgentStoppedError is thrown.
 */
export async function renewWithRetries(
  options: RenewOptions,
  backoff: BackoffPolicy,
  maxAttempts: number,
  sleep: (ms: number) => Promise<boolean>,
): Promise<Date> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await renewOnce(options)
    } catch (error) {
      const rejection = permanentRejection(error)
      const transient = rejection === undefined
      const expires = schedule(options.dir).expires
      const delay = backoffDelay(attempt, backoff)
      const hopeless =
        !transient || attempt + 1 >= maxAttempts || Date.now() + delay >= expires.getTime()
      options.logger.warn(
        {
          err: (error as Error).message,
          attempt: attempt + 1,
          transient,
          retry_in_ms: hopeless ? null : delay,
        },
        hopeless ? 'renewal failed; not retrying' : 'renewal failed; retrying',
      )
      if (rejection !== undefined) {
        const fix = rejection.startsWith('certificate_')
          ? "enroll again with a new token from 'hsmgate tokens create'"
          : 'ask the gateway operator to check the policy and the gateway logs'
        throw new RenewalRejectedError(
          rejection,
          `${(error as Error).message}; a retry cannot fix this, so ${fix}`,
          { cause: error },
        )
      }
      if (hopeless) throw error
      if (!(await sleep(delay))) throw new AgentStoppedError()
    }
  }
}

/**
 * TLS alerts that name the client certificate as revoked or expired. Envoy sends them once the
 * CRL that lists the certificate has reached it, before any HTTP response.
 */
const PERMANENT_TLS_ALERTS: ReadonlyMap<string, string> = new Map([
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'certificate_revoked'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate_expired'],
])

/**
 * Returns the error code of a renewal failure that a retry cannot fix, or undefined for a
 * transient one: a network or TLS failure other than the alerts above, a 5xx or a 429.
 */
function permanentRejection(error: unknown): string | undefined {
  if (error instanceof GatewayError) return error.transient ? undefined : error.code
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? PERMANENT_TLS_ALERTS.get(code) : undefined
}

function runReload(command: string, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', command], { timeout: RELOAD_TIMEOUT_MS }, (error) => {
      if (error === null) logger.info({ command }, 'reload command succeeded')
      else logger.error({ command, err: error.message }, 'reload command failed')
      resolve()
    })
  })
}
