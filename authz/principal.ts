import type { Application } from '../store/store.js'
import type { PolicyPrincipal } from './policy-request.js'

/** SPIFFE path prefix of application identities: spiffe://<domain>/app/<name>. */
const APPLICATION_PATH = '/app/'
/** SPIFFE path prefix of the gateway's own services, such as the readiness probe. */
const SERVICE_PATH = '/hsmgate/'
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/

export type PrincipalResult =
  | { readonly ok: true; readonly principal: PolicyPrincipal }
  | { readonly ok: false; readonly reason: 'unknown_application' | 'unknown_principal' }

/**
 * Maps a verified SPIFFE ID to a policy principal. An application must be registered in the
 * store. A SPIFFE ID that is neither an application nor a gateway service is unknown.
 */
export async function resolvePrincipal(
  spiffeId: string,
  trustDomain: string,
  lookup: (name: string) => Promise<Application | undefined>,
): Promise<PrincipalResult> {
  const prefix = `spiffe://${trustDomain}`
  if (!spiffeId.startsWith(prefix)) return { ok: false, reason: 'unknown_principal' }
  const path = spiffeId.slice(prefix.length)
  if (path.startsWith(APPLICATION_PATH)) {
    const name = path.slice(APPLICATION_PATH.length)
    if (!NAME_PATTERN.test(name)) return { ok: false, reason: 'unknown_principal' }
    const application = await lookup(name)
    return application === undefined
      ? { ok: false, reason: 'unknown_application' }
      : { ok: true, principal: { kind: 'application', application } }
  }
  if (path.startsWith(SERVICE_PATH)) {
    const name = path.slice(SERVICE_PATH.length)
    if (!NAME_PATTERN.test(name)) return { ok: false, reason: 'unknown_principal' }
    return { ok: true, principal: { kind: 'service', name } }
  }
  return { ok: false, reason: 'unknown_principal' }
}
