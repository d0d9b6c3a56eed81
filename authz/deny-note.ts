import type { Application } from '../store/store.js'
import type { PeerIdentity } from './identity.js'
import { DEFAULT_DENY_REASON } from './policy-engine.js'
import { sourceMatchesHost } from './request-facts.js'

/**
 * Returns a sentence to append to a default deny when the request came from an address that is
 * not one of the certificate's IP SANs (or, for a certificate without them, the application's
 * addresses), so `sourceMatchesHost` was false; otherwise ''. Policies that demand the host
 * binding then match nothing, which reads as a plain default deny without this note. The
 * caller holds the certificate and knows its own address, so the note tells it nothing new.
 */
export function sourceMismatchNote(
  reason: string,
  sourceAddress: string,
  identity: Pick<PeerIdentity, 'ipAddresses'>,
  application: Application | undefined,
): string {
  if (reason !== DEFAULT_DENY_REASON) return ''
  if (sourceMatchesHost(sourceAddress, application, identity.ipAddresses)) return ''
  const bound =
    identity.ipAddresses.length > 0 ? identity.ipAddresses : (application?.addresses ?? [])
  const owner = identity.ipAddresses.length > 0 ? "the certificate's" : "the application's"
  return (
    `; the source address ${sourceAddress || '(none)'} is not one of ${owner} addresses ` +
    `(${bound.join(', ') || 'none'}), so sourceMatchesHost is false`
  )
}
