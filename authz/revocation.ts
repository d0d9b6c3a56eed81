import { normalizeSerial } from '../store/certificate-serial.js'
import type { IssuedCertificate } from '../store/store.js'
import type { Deny } from './check-response.js'

/** Looks up certificates the gateway issued, by serial in lowercase hex. */
export interface RevocationLookup {
  certificate(serial: string): Promise<IssuedCertificate | undefined>
}

/**
 * Denies a peer certificate that the store records as revoked. Envoy refuses such a
 * certificate at the handshake once the new CRL has reached it through SDS; this check reads
 * the store on every request, so it also stops connections that were open before the
 * revocation. A certificate the store does not know, such as one from an external CA, passes.
 */
export async function revocationDeny(
  lookup: RevocationLookup | undefined,
  serialNumber: string,
): Promise<Deny | undefined> {
  if (lookup === undefined || serialNumber === '') return undefined
  const serial = normalizeSerial(serialNumber)
  const record = await lookup.certificate(serial)
  if (record?.status !== 'revoked') return undefined
  return {
    status: 401,
    code: 'certificate_revoked',
    message: `client certificate ${serial} was revoked; ask for a new certificate`,
    reason: 'certificate_revoked',
    logFields: { serial, app: record.app, revoked_at: record.revokedAt },
  }
}
