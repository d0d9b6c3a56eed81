import { X509Certificate } from 'node:crypto'
import type { Deny } from './check-response.js'
import type { PeerIdentity } from './identity.js'

/** Upper bound on the PEM text read from the body; client certificates are far smaller. */
const MAX_CERTIFICATE_CHARS = 16 * 1024

/**
 * Checks that a renewal request carries the certificate it was sent with. The agent puts the
 * PEM of its current certificate in the body's `certificate`, and authz compares its SHA-256
 * fingerprint with that of the peer certificate Envoy verified. Because the decision header
 * covers the body, the backend can rely on that field for the current serial and public key.
 * Returns the deny, or undefined when the certificate matches.
 */
export function checkRenewBinding(identity: PeerIdentity, body: Uint8Array): Deny | undefined {
  const fingerprint = fingerprintOf(body)
  if (fingerprint !== undefined && fingerprint === identity.fingerprint256) return undefined
  return {
    status: 403,
    code: 'certificate_mismatch',
    message: "field 'certificate' must be the PEM of the client certificate in use",
    reason: 'renew_certificate_mismatch',
  }
}

function fingerprintOf(body: Uint8Array): string | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(body).toString('utf8'))
    if (typeof value !== 'object' || value === null) return undefined
    const pem = (value as Record<string, unknown>).certificate
    if (typeof pem !== 'string' || pem.length > MAX_CERTIFICATE_CHARS) return undefined
    return new X509Certificate(pem).fingerprint256
  } catch {
    return undefined
  }
}
