import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Gauge } from 'prom-client'
import { metricsRegistry } from './registry.js'

/** A certificate whose expiry is exported, read from its file at each scrape. */
export interface WatchedCertificate {
  /** Role of the certificate, such as 'serving' or 'ca'; a small fixed set. */
  role: string
  /** Returns the PEM text; a leaf-first chain is fine, only the first certificate counts. */
  read: () => string
}

const watched = new Map<string, WatchedCertificate>()

/** Adds certificates to the expiry gauge; a role given again replaces the earlier source. */
export function watchCertificates(certificates: WatchedCertificate[]): void {
  for (const certificate of certificates) watched.set(certificate.role, certificate)
}

/** Reads a PEM file at each scrape. */
export function pemFile(path: string): () => string {
  return () => readFileSync(path, 'utf8')
}

new Gauge({
  name: 'hsmgate_certificate_expiry_seconds',
  help: 'notAfter of each watched certificate as seconds since the Unix epoch.',
  labelNames: ['role'] as const,
  registers: [metricsRegistry],
  collect() {
    this.reset()
    for (const { role, read } of watched.values()) {
      try {
        const notAfter = Date.parse(new X509Certificate(read()).validTo)
        this.set({ role }, notAfter / 1000)
        readErrors.set({ role }, 0)
      } catch {
        readErrors.set({ role }, 1)
      }
    }
  },
})

const readErrors = new Gauge({
  name: 'hsmgate_certificate_read_failed',
  help: 'Whether the last scrape could not read or parse the certificate: 1 failed, 0 read.',
  labelNames: ['role'] as const,
  registers: [metricsRegistry],
})
