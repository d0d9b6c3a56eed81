import { execFile } from 'node:child_process'
import type { Logger } from '../log/logger.js'
import { readCredentials, writeCredentials } from './agent-files.js'
import { backoffDelay, renewalDue, type BackoffPolicy } from './backoff.js'
import { certificateOf } from './enroll.js'
import { GatewayError, postJson } from './gateway-client.js'
import { newKeyAndCsr, type AgentKeyType } from './key-material.js'

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
  readonly logger: Logger
}

/**
 * Renews once: a new key and CSR, sent over mTLS with the current certificate, whose PEM the
 * body carries so the gateway can match it to the connection. The new pair replaces the old
 * files, then the reload command runs. Returns the new certificate's expiry.
 */
export async function renewOnce(options: RenewOptions): Promise<Date> {
  const { logger } = options
  const current = readCredentials(options.dir)
  const material = await newKeyAndCsr(options.keyType)
  logger.info({ serial: current.leaf.serialNumber }, 'new key generated; sending renewal request')
  const answer = await postJson(
    new URL('/v1/certs/renew', options.gateway).toString(),
    { certificate: current.leaf.toString(), csr: material.csrPem },
    { ca: options.caPem, cert: current.chainPem, key: current.keyPem },
  )
  const chain = certificateOf(answer)
  writeCredentials(options.dir, material.keyPem, chain)
  const next = readCredentials(options.dir).leaf
  logger.info({ serial: next.serialNumber, not_after: next.validTo }, 'renewed; files written')
  if (options.reloadCommand !== undefined) await runReload(options.reloadCommand, logger)
  return new Date(next.validTo)
}

/** When the certificate in `dir` is due for renewal, and when it expires. */
export function schedule(dir: string): { due: Date; expires: Date } {
  const leaf = readCredentials(dir).leaf
  const notBefore = new Date(leaf.validFrom)
  const expires = new Date(leaf.validTo)
  return { due: renewalDue(notBefore, expires), expires }
}

/**
 * Renews with retries. A transient failure (network, TLS, 5xx, 429) is retried after a capped
 * exponential backoff with jitter, but a rejection such as a revoked or superseded certificate
 * is not. Retries stop after `maxAttempts`, or when the certificate expires, because renewal
 * needs a valid one. `sleep` resolves false when the agent is stopping.
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
      const transient = !(error instanceof GatewayError) || error.transient
      const expires = schedule(options.dir).expires
      const delay = backoffDelay(attempt, backoff)
      const hopeless =
        !transient || attempt + 1 >= maxAttempts || Date.now() + delay >= expires.getTime()
      options.logger.warn(
        {
          err: (error as Error).message,
          attempt: attempt + 1,
          retry_in_ms: hopeless ? null : delay,
        },
        'renewal failed',
      )
      if (hopeless) throw error
      if (!(await sleep(delay))) throw new Error('stopped while waiting to retry the renewal')
    }
  }
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
