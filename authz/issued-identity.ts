import type { Logger } from '../log/logger.js'
import type { IssuedCertificate } from '../store/store.js'
import { personName } from './approval-rules.js'
import type { Deny } from './check-response.js'
import type { PeerIdentity } from './identity.js'
import type { RevocationLookup } from './revocation.js'

/** SPIFFE path prefix of application identities. */
const APPLICATION_PATH = '/app/'
/** Certificates already reported for an unbacked 'tpm' claim, so that each is logged once. */
const warned = new Set<string>()
const WARNED_LIMIT = 1024

/**
 * Ties the claims that only hsmgate's issuing CA may make to the certificates table. Envoy
 * accepts every CA in the trust bundle, which also contains the organisation's own roots, so the
 * certificate itself proves only that some trusted CA signed it. Two claims count only when the
 * store recorded the certificate at issuance (same serial, notBefore and notAfter):
 *
 * - a person principal (`spiffe://DOMAIN/person/NAME`), which votes on approvals; the record
 *   must belong to `person:NAME`. Otherwise the request is denied.
 * - key protection `tpm`; the record must belong to the same application and say `tpm`.
 *   Otherwise the certificate counts as `software`, the claim any CA may make.
 *
 * Returns the identity as the policies must see it, or the deny.
 */
// NOTE: a CA in the trust bundle that deliberately copies the serial and validity of a
// certificate that hsmgate issued passes this check, because the certificates table stores no
// fingerprint to tell the two apart.
export async function checkIssuedClaims(
  lookup: RevocationLookup | undefined,
  identity: PeerIdentity,
  trustDomain: string,
  logger: Logger,
): Promise<{ identity: PeerIdentity } | { deny: Deny }> {
  const person = personName(identity.principal, trustDomain)
  if (person === undefined && identity.keyProtection !== 'tpm') return { identity }
  const record = lookup === undefined ? undefined : await lookup.certificate(identity.serialNumber)
  const issued = record !== undefined && sameValidity(record, identity) ? record : undefined

  if (person !== undefined) {
    if (issued?.app === `person:${person}`) return { identity }
    return {
      deny: {
        status: 401,
        code: 'unauthenticated',
        message: 'a valid client certificate is required',
        reason: 'person_certificate_not_issued',
        logFields: {
          detail:
            `certificate ${identity.serialNumber} (issuer ${identity.issuer}) names person ` +
            `${person} but hsmgate did not issue it; issue approver certificates with ` +
            "'hsmgate approvals identity'",
        },
      },
    }
  }

  const app = applicationName(identity.principal, trustDomain)
  if (issued !== undefined && issued.keyProtection === 'tpm' && issued.app === app) {
    return { identity }
  }
  if (!warned.has(identity.fingerprint256)) {
    if (warned.size >= WARNED_LIMIT) warned.clear()
    warned.add(identity.fingerprint256)
    logger.warn(
      { serial: identity.serialNumber, issuer: identity.issuer, app },
      "certificate claims key protection 'tpm' but hsmgate did not issue it so; it counts as " +
        "'software'",
    )
  }
  return { identity: { ...identity, keyProtection: 'software' } }
}

function sameValidity(record: IssuedCertificate, identity: PeerIdentity): boolean {
  return (
    Date.parse(record.notBefore) === identity.notBefore.getTime() &&
    Date.parse(record.notAfter) === identity.notAfter.getTime()
  )
}

function applicationName(principal: string, trustDomain: string): string | undefined {
  const prefix = `spiffe://${trustDomain}${APPLICATION_PATH}`
  return principal.startsWith(prefix) ? principal.slice(prefix.length) : undefined
}
