import type { CheckRequest } from './check-request.js'
import type { PeerIdentity } from './identity.js'

/**
 * Context extension that the Envoy bootstrap sets on the enrollment listener's route. Context
 * extensions come from the bootstrap only; a client has no way to set them.
 */
export const LISTENER_EXTENSION = 'hsmgate_listener'
export const ENROLL_LISTENER = 'enroll'

/** The Service principal name under which enrollment requests are decided. */
export const ENROLLMENT_SERVICE = 'enrollment'

/**
 * True when the request arrived on the enrollment listener: the route carries the enrollment
 * context extension and, when `enrollPort` is known, the destination port is that port. Both
 * must agree, so a mistaken bootstrap that set the extension on the main listener still does not
 * turn its requests into enrollment requests.
 */
export function isEnrollListener(request: CheckRequest, enrollPort: number | undefined): boolean {
  const attributes = request.attributes
  if (attributes?.context_extensions?.[LISTENER_EXTENSION] !== ENROLL_LISTENER) return false
  if (enrollPort === undefined) return false
  return attributes.destination?.address?.socket_address?.port_value === enrollPort
}

/**
 * Returns the identity of an enrollment request, which has no client certificate yet. The
 * principal is the gateway service `enrollment`. The certificate facts are empty, so no policy
 * that demands a certificate property can match by accident.
 */
export function enrollmentIdentity(trustDomain: string, nowMs: number): PeerIdentity {
  const now = new Date(nowMs)
  return {
    principal: `spiffe://${trustDomain}/hsmgate/${ENROLLMENT_SERVICE}`,
    trustDomain,
    serialNumber: '',
    issuer: '',
    subject: '',
    notBefore: now,
    notAfter: now,
    fingerprint256: '',
    ipAddresses: [],
    dnsNames: [],
    keyProtection: 'software',
  }
}
