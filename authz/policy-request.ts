import type { CedarValueJson, EntityJson, EntityUidJson } from '@cedar-policy/cedar-wasm/nodejs'
import type { Application } from '../store/store.js'
import { namespaceOwner } from '../crypto-backend/keys/key-namespace.js'
import { ENTITY } from './policy-schema.js'

/** Facts about the client certificate that policies may test. */
export interface CertificateFacts {
  readonly issuer: string
  readonly serial: string
  /** notAfter minus notBefore, in seconds. */
  readonly lifetimeSeconds: number
  /** Time since notBefore, in seconds. */
  readonly ageSeconds: number
  /** Where the client's private key lives: 'software' or 'tpm'. */
  readonly keyProtection: 'software' | 'tpm'
}

/** Request facts that become the Cedar context. */
export interface ContextFacts {
  readonly sourceAddress: string
  readonly sourceMatchesHost: boolean
  readonly certificate: CertificateFacts
  /** Hour 0 to 23, minute 0 to 59 and weekday name, all in UTC. */
  readonly time: { readonly hour: number; readonly minute: number; readonly weekday: string }
  readonly algorithm?: string
  /** The body's `context` object; null when the body has none. */
  readonly encryptionContext: Readonly<Record<string, string>> | null
  readonly requestBytes: number
  readonly approvalGranted: boolean
}

/** The caller: an application from the store, or one of the gateway's own services. */
export type PolicyPrincipal =
  | { readonly kind: 'application'; readonly application: Application }
  | { readonly kind: 'service'; readonly name: string }

/** The key attributes policies see; a KeyVersion from the store fits. */
export interface PolicyKey {
  readonly name: string
  readonly type: string
  readonly owner: string
  readonly tags: readonly string[]
  readonly classification: string
  /**
   * The application whose namespace contains the name (see crypto-backend/keys/key-namespace.ts),
   * resolved against the registered applications. When absent, only the owner is considered,
   * so it is the owner for a name that starts with `<owner>-` and '' otherwise.
   */
  readonly namespace?: string
}

/** Everything one authorization decision depends on. */
export interface PolicyRequest {
  readonly principal: PolicyPrincipal
  readonly action: string
  /** The key a keyed action acts on; absent for actions on the gateway. */
  readonly key?: PolicyKey
  readonly context: ContextFacts
}

const GATEWAY_UID = { type: ENTITY.gateway, id: 'gateway' }
const ENCRYPTION_CONTEXT_UID = { type: ENTITY.encryptionContext, id: 'request' }

/** The Cedar form of a request: principal, action, resource, context and entities. */
export interface CedarRequest {
  principal: EntityUidJson
  action: EntityUidJson
  resource: EntityUidJson
  context: Record<string, CedarValueJson>
  entities: EntityJson[]
}

/** Converts request facts to a Cedar request whose entities hold only what it refers to. */
export function toCedarRequest(request: PolicyRequest): CedarRequest {
  const entities: EntityJson[] = [principalEntity(request.principal)]
  let resource: EntityUidJson = GATEWAY_UID
  if (request.key === undefined) {
    entities.push({ uid: GATEWAY_UID, attrs: {}, parents: [] })
  } else {
    const key = request.key
    resource = { type: ENTITY.key, id: key.name }
    entities.push({
      uid: resource,
      attrs: {
        name: key.name,
        type: key.type,
        owner: key.owner,
        tags: [...key.tags],
        classification: key.classification,
        namespace: key.namespace ?? namespaceOwner(key.name, (app) => app === key.owner),
      },
      parents: [],
    })
  }
  const facts = request.context
  entities.push({
    uid: ENCRYPTION_CONTEXT_UID,
    attrs: {},
    parents: [],
    tags: { ...(facts.encryptionContext ?? {}) },
  })
  const context: Record<string, CedarValueJson> = {
    sourceAddress: facts.sourceAddress,
    sourceMatchesHost: facts.sourceMatchesHost,
    certificate: { ...facts.certificate },
    time: { ...facts.time },
    encryptionContext: { __entity: ENCRYPTION_CONTEXT_UID },
    hasEncryptionContext: facts.encryptionContext !== null,
    requestBytes: facts.requestBytes,
    approvalGranted: facts.approvalGranted,
  }
  if (facts.algorithm !== undefined) context.algorithm = facts.algorithm
  return {
    principal: entities[0]!.uid,
    action: { type: ENTITY.action, id: request.action },
    resource,
    context,
    entities,
  }
}

function principalEntity(principal: PolicyPrincipal): EntityJson {
  if (principal.kind === 'service') {
    return {
      uid: { type: ENTITY.service, id: principal.name },
      attrs: { name: principal.name },
      parents: [],
    }
  }
  const app = principal.application
  return {
    uid: { type: ENTITY.application, id: app.name },
    attrs: {
      name: app.name,
      team: app.team,
      hosts: [...app.hosts],
      addresses: [...app.addresses],
      suspended: app.suspended,
    },
    parents: [],
  }
}

/** Names the principal for messages, such as `Application payments`. */
export function describePrincipal(principal: PolicyPrincipal): string {
  return principal.kind === 'service'
    ? `Service ${principal.name}`
    : `Application ${principal.application.name}`
}
