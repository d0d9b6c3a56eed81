import type { Logger } from '../../log/logger.js'
import { PostgresStore } from '../../store/postgres/postgres-store.js'
import type { Store } from '../../store/store.js'

/** Default interval between two reads of the revocation mark. */
export const REVOCATION_POLL_MS = 1000

export interface RevocationWatchOptions {
  /** Reads a value that changes whenever a certificate is revoked. */
  readonly mark: () => Promise<string>
  /** Publishes a new CRL; resolves false when it could not run now and should be retried. */
  readonly publish: () => Promise<boolean>
  readonly logger: Logger
  /** Milliseconds between two reads of the mark; default REVOCATION_POLL_MS. */
  readonly pollMs?: number
}

/**
 * Returns the revocation mark of a store: on PostgreSQL a count and the newest revocation time
 * from one index scan, elsewhere the sorted serials of the revoked, unexpired certificates.
 */
export function revocationMarkOf(store: Pick<Store, 'revokedCertificates'>): () => Promise<string> {
  if (store instanceof PostgresStore) return () => store.revocationMark()
  return async () => {
    const revoked = await store.revokedCertificates(new Date().toISOString())
    return revoked
      .map((certificate) => certificate.serial)
      .sort()
      .join(',')
  }
}

/**
 * Republishes the CRL that this node's Envoy loads whenever a certificate is revoked anywhere:
 * by another gateway node, or by `hsmgate certs revoke` run against another node's config. It
 * reads the revocation mark from the shared store every `pollMs`, so Envoy refuses a revoked
 * certificate at the TLS handshake within about pollMs plus the CRL signing time. authz does not
 * depend on it: it reads each certificate's state from the store on every request.
 */
export class RevocationWatch {
  private seen: string | undefined
  private timer: NodeJS.Timeout | undefined
  private running = false
  /** Consecutive failed polls, so that a lasting failure is logged once a minute. */
  private failures = 0

  constructor(private readonly options: RevocationWatchOptions) {}

  /** Reads the current mark, which the CRL published at start already covers, and polls. */
  async start(): Promise<void> {
    this.seen = await this.options.mark()
    this.timer = setInterval(() => void this.poll(), this.options.pollMs ?? REVOCATION_POLL_MS)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Reads the mark once and publishes a CRL when it changed; returns whether it published. */
  async poll(): Promise<boolean> {
    if (this.running) return false
    this.running = true
    try {
      const mark = await this.options.mark()
      const published = mark !== this.seen && (await this.options.publish())
      if (published) {
        this.options.logger.info({ previous: this.seen, mark }, 'revocation seen; CRL published')
        this.seen = mark
      }
      this.recovered()
      return published
    } catch (error) {
      this.failures++
      if (this.failures === 1 || this.failures % 60 === 0) {
        this.options.logger.error(
          { err: error, failures: this.failures },
          'revocation watch failed; the current CRL stays in place and the next poll retries',
        )
      }
      return false
    } finally {
      this.running = false
    }
  }

  private recovered(): void {
    if (this.failures === 0) return
    this.options.logger.info({ failures: this.failures }, 'revocation watch resumed')
    this.failures = 0
  }
}
