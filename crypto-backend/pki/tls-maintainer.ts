import type * as x509 from '@peculiar/x509'
import type { LoadedConfig } from '../../config/load.js'
import type { Logger } from '../../log/logger.js'
import type { Store } from '../../store/store.js'
import type { HsmCluster } from '../hsm/index.js'
import type { IssuingCa } from './issuing-ca.js'
import { IssuingCaSource } from './issuing-ca-source.js'
import { publishServingCertificate, publishValidation } from './tls-publisher.js'

/** How often the maintainer checks whether the certificate or the CRL needs renewing. */
const CHECK_INTERVAL_MS = 10_000

/**
 * Returns the time at which `fraction` of the span from `start` to `end` has passed. The serving
 * certificate's span starts when it was issued, not at its notBefore, which is backdated.
 */
export function renewalTime(start: Date, end: Date, fraction: number): number {
  return start.getTime() + (end.getTime() - start.getTime()) * fraction
}

/**
 * Keeps the gateway's TLS material current. It runs in the crypto backend, because that is the
 * one long-running process with the HSM PINs. It issues the serving certificate at start and
 * after two thirds of its life. It publishes the CRL at start, after half of its life, and
 * whenever the store's set of revoked certificates changes. When hsmgate.yaml names a new
 * issuing CA (after `hsmgate ca import`), it switches to it and publishes a serving certificate
 * and a trust bundle of the new chain, which Envoy loads without a restart.
 */
export class TlsMaintainer {
  private source?: IssuingCaSource
  private ca?: IssuingCa
  private serving?: x509.X509Certificate
  private servingIssuedAt = new Date()
  private crl?: x509.X509Crl
  private revokedSeen = ''
  private timer?: NodeJS.Timeout
  private busy = false
  private switchProblem = ''

  constructor(
    private config: LoadedConfig,
    private readonly cluster: HsmCluster,
    private readonly store: Pick<Store, 'revokedCertificates'>,
    private readonly logger: Logger,
  ) {}

  /** Publishes both SDS files, then checks every few seconds. Throws when the first fails. */
  async start(): Promise<void> {
    this.source = await IssuingCaSource.open(this.config, this.cluster)
    this.ca = this.source.current
    await this.renewServing()
    await this.renewCrl()
    this.timer = setInterval(() => void this.tick(), CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /**
   * Publishes a new CRL now, for a revocation that another process wrote to the store. Returns
   * false, publishing nothing, while a scheduled check runs, so the caller tries again later.
   */
  async publishCrl(): Promise<boolean> {
    if (this.busy || this.ca === undefined) return false
    this.busy = true
    try {
      await this.renewCrl()
      return true
    } finally {
      this.busy = false
    }
  }

  /** The issuing CA in force, shared with the client certificate issuer; set by start(). */
  get caSource(): IssuingCaSource {
    if (this.source === undefined) throw new Error('TlsMaintainer.start() has not run')
    return this.source
  }

  private async tick(): Promise<void> {
    if (this.busy) return
    this.busy = true
    try {
      await this.followIssuingCa()
      const now = Date.now()
      const serving = this.serving!
      if (now >= renewalTime(this.servingIssuedAt, serving.notAfter, 2 / 3)) {
        await this.renewServing()
      }
      const crl = this.crl!
      const crlDue =
        crl.nextUpdate === undefined || now >= renewalTime(crl.thisUpdate, crl.nextUpdate, 1 / 2)
      if (crlDue || (await this.revokedSerials()) !== this.revokedSeen) await this.renewCrl()
    } catch (error) {
      // The old material stays in place; the next check tries again.
      this.logger.error({ err: error }, 'renewing the gateway TLS material failed')
    } finally {
      this.busy = false
    }
  }

  /** Switches to a new issuing CA named in hsmgate.yaml and publishes both SDS files for it. */
  private async followIssuingCa(): Promise<void> {
    const previous = this.ca!.certificate.subject
    try {
      if (!(await this.source!.refresh())) return
    } catch (error) {
      // An unreadable hsmgate.yaml or an unusable new CA leaves the current CA in force; the
      // same problem is logged once, not on every check.
      const message = (error as Error).message
      if (message !== this.switchProblem) this.logger.error({ err: error }, message)
      this.switchProblem = message
      return
    }
    this.switchProblem = ''
    this.ca = this.source!.current
    this.config = this.source!.config
    this.logger.info(
      { previous, issuing_ca: this.ca.certificate.subject },
      'issuing CA changed; publishing a serving certificate and trust bundle of the new chain',
    )
    await this.renewServing()
    await this.renewCrl()
  }

  private async revokedSerials(): Promise<string> {
    const revoked = await this.store.revokedCertificates(new Date().toISOString())
    return revoked
      .map((c) => c.serial)
      .sort()
      .join(',')
  }

  private async renewServing(): Promise<void> {
    this.servingIssuedAt = new Date()
    this.serving = await publishServingCertificate(this.config, this.ca!)
    this.logger.info(
      { serial: this.serving.serialNumber, not_after: this.serving.notAfter.toISOString() },
      'serving certificate issued',
    )
  }

  private async renewCrl(): Promise<void> {
    this.revokedSeen = await this.revokedSerials()
    this.crl = await publishValidation(this.config, this.ca!, this.cluster, this.store)
    this.logger.info(
      { entries: this.crl.entries.length, next_update: this.crl.nextUpdate?.toISOString() },
      'CRL published',
    )
  }
}
