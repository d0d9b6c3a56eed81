import type * as x509 from '@peculiar/x509'
import { normalizeSerial } from '../../store/certificate-serial.js'
import type { IssuedCertificate } from '../../store/store.js'

/**
 * Returns the CRL distribution point written into demo certificates: path /v1/crl on the
 * enrollment listener, which serves it without a client certificate. Envoy itself gets the CRL
 * through SDS.
 */
export function demoCrlUrl(address: string, port: number): string {
  const host = address === '0.0.0.0' || address === '::' ? 'localhost' : address
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}/v1/crl`
}

/** Builds the store record of a client certificate that `hsmgate init` issued in software. */
export function issuedRecord(
  cert: x509.X509Certificate,
  app: string,
  host: string,
  addresses: string[],
): IssuedCertificate {
  const now = new Date().toISOString()
  return {
    serial: normalizeSerial(cert.serialNumber),
    app,
    host,
    addresses,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    keyProtection: 'software',
    status: 'active',
    revokedAt: null,
    revocationReason: null,
    issuedAt: now,
  }
}
