import { randomBytes } from 'node:crypto'
import type { Logger } from '../log/logger.js'
import type { Application, KeyVersion } from '../store/store.js'
import {
  DECISION_HEADER,
  DECISION_ID_HEADER,
  PRINCIPAL_HEADER,
  allowedResponse,
  overwrite,
  type CheckResponse,
  type Deny,
} from './check-response.js'
import type { DecisionAuditor } from './decision-audit.js'
import { bodyDigest, MAX_SOURCE_ADDRESS_LENGTH, signDecision } from './decision-header.js'
import { normalizeSerial } from '../store/certificate-serial.js'
import { IdentityError, identityFromCertificate, type PeerIdentity } from './identity.js'
import { describeOperation, resolveEnrollOperation, resolveOperation } from './operation.js'
import { clientAddress, type TrustedProxies } from './client-address.js'
import { detectClone, type CloneDetection } from './clone-detection.js'
import { enrollmentIdentity, isEnrollListener } from './enroll-listener.js'
import { checkRenewBinding } from './renew-binding.js'
import { revocationDeny, type RevocationLookup } from './revocation.js'
import type { PolicyEngine } from './policy-engine.js'
import { resolvePrincipal } from './principal.js'
import { prospectiveKey } from './prospective-key.js'
import { lookUpNamespaceOwner } from '../crypto-backend/keys/key-namespace.js'
import type { PolicyKey, PolicyPrincipal } from './policy-request.js'
import { contextFacts } from './request-facts.js'
import { sourceMismatchNote } from './deny-note.js'
import { collectHeaders, isPartialBody, requestBody, type CheckRequest } from './check-request.js'
import {
  finish,
  internalError,
  storeUnavailable,
  type Facts,
  type Outcome,
} from './check-outcome.js'
import { StoreUnavailableError } from '../store/store-unavailable.js'
import { resolveApprovalRoute, type ApprovalOperation } from './approval-routes.js'
import { approvalCallDeny, approvalRouteDeny } from './approval-check.js'
import { checkIssuedClaims } from './issued-identity.js'
import {
  approvalGate,
  observeUsage,
  type ControlledRequest,
  type RuntimeControls,
} from './controls.js'

export {
  DECISION_HEADER,
  DECISION_ID_HEADER,
  PRINCIPAL_HEADER,
  type CheckResponse,
  type HeaderValueOption,
} from './check-response.js'
export type { CheckRequest } from './check-request.js'

/** Prefix of the headers that only ext_authz may set on requests to the backend. */
export const RESERVED_HEADER_PREFIX = 'x-hsmgate-'

export interface CheckHandlerOptions {
  /** Returns the policy set in force. It is called once per request, so reloads apply at once. */
  readonly policies: () => PolicyEngine
  /** Looks up registered applications and keys; read on every request, so changes apply at once. */
  readonly directory: {
    application(name: string): Promise<Application | undefined>
    keyVersions(name: string): Promise<KeyVersion[]>
  }
  /** Writes each decision before the answer leaves; a throw turns the answer into a 503 deny. */
  readonly audit: DecisionAuditor
  readonly decisionSecret: Buffer
  readonly trustDomain: string
  readonly logger: Logger
  /** Port of the enrollment listener; without it no request is treated as enrollment. */
  readonly enrollPort?: number
  /** Proxies whose x-forwarded-for entries name the client address. */
  readonly trustedProxies?: TrustedProxies
  /** Records certificate serials and denies a superseded certificate; off when absent. */
  readonly cloneDetection?: CloneDetection
  /** Issued certificates, to deny a revoked one at once; no revocation check when absent. */
  readonly revocations?: RevocationLookup
  /** Clock in milliseconds since the Unix epoch, replaced in tests. */
  readonly now?: () => number
  /** Quotas, anomaly rules, alerts and dual control; none of them applies when absent. */
  readonly controls?: RuntimeControls
}

/** Returns a random decision id: `d_` and 16 random bytes as base64url. */
export function newDecisionId(): string {
  return `d_${randomBytes(16).toString('base64url')}`
}

/**
 * Builds the Check handler. It identifies the client from the peer certificate, maps the route
 * to an operation, resolves the application and key, evaluates the Cedar policies and returns an
 * allow carrying a signed decision header, or a deny with an HTTP status and JSON body. Every
 * decision is written to the audit before the answer, and when that write fails the answer is a 503
 * deny. Any unexpected error also becomes a 503 deny, never an allow.
 */
export function createCheckHandler(
  options: CheckHandlerOptions,
): (req: CheckRequest) => Promise<CheckResponse> {
  const now = options.now ?? Date.now
  return async (request) => {
    const http = request.attributes?.request?.http
    const facts: Facts = {
      decisionId: newDecisionId(),
      method: typeof http?.method === 'string' ? http.method : '',
      path: typeof http?.path === 'string' ? http.path : '',
      startedMs: performance.now(),
      sourceAddress: sourceAddressOf(request, options.trustedProxies),
      body: new Uint8Array(),
    }
    let outcome: Outcome
    try {
      outcome = await decide(options, request, facts, now())
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        options.logger.error(
          { decision_id: facts.decisionId, err: error, store_cause: error.reason },
          'authorization failed because the store is unavailable',
        )
        outcome = { allow: false, deny: storeUnavailable() }
      } else {
        options.logger.error(
          { decision_id: facts.decisionId, err: error },
          'authorization failed with an internal error',
        )
        outcome = { allow: false, deny: internalError() }
      }
    }
    return finish(options, request, facts, outcome)
  }
}

async function decide(
  options: CheckHandlerOptions,
  request: CheckRequest,
  facts: Facts,
  nowMs: number,
): Promise<Outcome> {
  const http = request.attributes?.request?.http
  const denied = (deny: Deny): Outcome => ({ allow: false, deny })
  const enroll = isEnrollListener(request, options.enrollPort)
  try {
    facts.identity = enroll
      ? enrollmentIdentity(options.trustDomain, nowMs)
      : identityFromCertificate(
          request.attributes?.source?.certificate ?? '',
          options.trustDomain,
          nowMs,
        )
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error
    return denied({
      status: 401,
      code: 'unauthenticated',
      message: 'a valid client certificate is required',
      reason: error.code,
      logFields: { detail: error.message },
    })
  }
  const revoked = enroll
    ? undefined
    : await revocationDeny(options.revocations, facts.identity.serialNumber)
  if (revoked !== undefined) return denied(revoked)
  if (!enroll) {
    const claims = await checkIssuedClaims(
      options.revocations,
      facts.identity,
      options.trustDomain,
      options.logger,
    )
    if ('deny' in claims) return denied(claims.deny)
    facts.identity = claims.identity
  }
  const identity = facts.identity
  const approvalRoute = enroll ? undefined : resolveApprovalRoute(facts.method, facts.path)
  if (approvalRoute !== undefined) {
    return decideApprovalRoute(options, request, facts, approvalRoute, nowMs)
  }
  const route = (enroll ? resolveEnrollOperation : resolveOperation)(facts.method, facts.path)
  if (!route.ok) return denied({ ...route.error, reason: route.error.code })
  const operation = (facts.operation = route.operation)

  const forbidden = (reason: string, policyIds?: readonly string[], why?: string): Outcome =>
    denied({
      status: 403,
      code: 'forbidden',
      message:
        `principal ${identity.principal} may not ${describeOperation(operation)}` +
        (why === undefined ? '' : `: ${why}`),
      reason,
      policyIds,
    })
  const principal = await resolvePrincipal(identity.principal, options.trustDomain, (name) =>
    options.directory.application(name),
  )
  if (!principal.ok) return forbidden(principal.reason)
  if (principal.principal.kind === 'application') {
    facts.application = principal.principal.application.name
  }
  if (principal.principal.kind === 'application' && options.cloneDetection !== undefined) {
    const app = principal.principal.application
    const clone = await detectClone(
      options.cloneDetection,
      app,
      identity,
      facts.decisionId,
      options.logger,
    )
    if (clone !== undefined) return denied(clone)
  }

  const headers = collectHeaders(http)
  if (isPartialBody(http)) {
    return denied({
      status: 413,
      code: 'body_too_large',
      message: 'request body is too large',
      reason: 'partial_body',
    })
  }
  facts.body = requestBody(http)
  if (operation.name === 'renew') {
    const mismatch = checkRenewBinding(identity, facts.body)
    if (mismatch !== undefined) return denied(mismatch)
  }

  let key: PolicyKey | undefined
  if ('key' in operation) {
    key = (await options.directory.keyVersions(operation.key))[0]
    facts.keyKnown = key !== undefined
    if (key === undefined && operation.name === 'create-key') {
      key = prospectiveKey(operation.key, principal.principal, facts.body)
    }
    if (key === undefined) {
      return denied({
        status: 404,
        code: 'key_not_found',
        message: `no key named '${operation.key}'`,
        reason: 'key_not_found',
      })
    }
    // The caller's own application was just read, so only other candidates need a lookup.
    const own = principal.principal.kind === 'application' ? facts.application : undefined
    const registered = async (app: string): Promise<boolean> =>
      app === own || (await options.directory.application(app)) !== undefined
    key = { ...key, namespace: await lookUpNamespaceOwner(key.name, registered) }
  }

  const controlled = {
    identity,
    operation: operation.name,
    key: 'key' in operation ? operation.key : undefined,
    sourceAddress: facts.sourceAddress,
    body: facts.body,
    decisionId: facts.decisionId,
    nowMs,
  }
  const caller = await controlledPrincipal(options, principal.principal, controlled)
  const gate = await approvalGate(options.controls, caller, key, controlled)
  const engine = options.policies()
  const decision = engine.decide({
    principal: caller,
    action: operation.name,
    ...(key === undefined ? {} : { key }),
    context: {
      ...contextFacts({
        identity,
        application: caller.kind === 'application' ? caller.application : undefined,
        sourceAddress: facts.sourceAddress,
        body: facts.body,
        nowMs,
      }),
      approvalGranted: gate.deny === undefined && gate.granted,
    },
  })
  if (decision.errors.length > 0) {
    options.logger.warn(
      { decision_id: facts.decisionId, errors: decision.errors, policy_version: engine.version },
      'policies failed to evaluate',
    )
  }
  if (!decision.allowed) {
    const ids = decision.policyIds
    const application = caller.kind === 'application' ? caller.application : undefined
    const note = sourceMismatchNote(decision.reason, facts.sourceAddress, identity, application)
    return forbidden(decision.reason, ids, `${decision.reason} (policy ${ids.join(', ')})${note}`)
  }
  if (gate.deny !== undefined) return denied(gate.deny)
  const overQuota =
    caller.kind === 'application'
      ? await options.controls?.quotas?.charge(
          { app: caller.application.name, operation: operation.name, key: controlled.key },
          nowMs,
        )
      : undefined
  if (overQuota !== undefined) return denied(overQuota)
  const grantUsed = await gate.take()
  if (grantUsed !== undefined) return denied(grantUsed)
  return {
    allow: true,
    headers: allowHeaders(options, identity, facts, headers, nowMs),
    policyIds: decision.policyIds,
    reason: decision.reason,
  }
}

/** Runs the anomaly rules for an application; returns the principal the policies must see. */
async function controlledPrincipal(
  options: CheckHandlerOptions,
  principal: PolicyPrincipal,
  request: ControlledRequest,
): Promise<PolicyPrincipal> {
  if (options.controls === undefined || principal.kind !== 'application') return principal
  const application = await observeUsage(
    options.controls,
    principal.application,
    request,
    options.logger,
  )
  return application === principal.application ? principal : { kind: 'application', application }
}

/** Decides a call of the approvals API; see approvalRouteDeny. */
async function decideApprovalRoute(
  options: CheckHandlerOptions,
  request: CheckRequest,
  facts: Facts,
  route: ApprovalOperation | Deny,
  nowMs: number,
): Promise<Outcome> {
  if (!('name' in route)) return { allow: false, deny: route }
  const identity = facts.identity as PeerIdentity
  facts.operation = route
  const http = request.attributes?.request?.http
  if (isPartialBody(http)) {
    const reason = 'partial_body'
    return {
      allow: false,
      deny: { status: 413, code: 'body_too_large', message: 'request body is too large', reason },
    }
  }
  const deny = await approvalRouteDeny(
    route,
    identity.principal,
    options.trustDomain,
    options.controls?.dualControl,
    (name) => options.directory.application(name),
  )
  if (deny !== undefined) return { allow: false, deny }
  facts.body = requestBody(http)
  // Clone detection, anomaly rules and host binding apply here as to every other operation.
  const controlDeny = await approvalCallDeny(
    {
      route,
      identity,
      sourceAddress: facts.sourceAddress,
      body: facts.body,
      decisionId: facts.decisionId,
      nowMs,
    },
    {
      trustDomain: options.trustDomain,
      application: (name) => options.directory.application(name),
      logger: options.logger,
      ...(options.cloneDetection === undefined ? {} : { cloneDetection: options.cloneDetection }),
      ...(options.controls === undefined ? {} : { controls: options.controls }),
    },
  )
  if (controlDeny !== undefined) return { allow: false, deny: controlDeny }
  const headers = allowHeaders(options, identity, facts, collectHeaders(http), nowMs)
  return {
    allow: true,
    headers,
    policyIds: [],
    reason: 'approval API call by an authorized principal',
  }
}

function allowHeaders(
  options: CheckHandlerOptions,
  identity: PeerIdentity,
  facts: Facts,
  requestHeaders: Map<string, string>,
  nowMs: number,
): CheckResponse {
  const headers = [
    overwrite(PRINCIPAL_HEADER, identity.principal),
    overwrite(
      DECISION_HEADER,
      signDecision(options.decisionSecret, {
        decisionId: facts.decisionId,
        principal: identity.principal,
        method: facts.method,
        path: facts.path,
        bodyDigest: bodyDigest(facts.body),
        issuedAtMs: nowMs,
        // The backend copies these into its own audit record of the operation.
        certSerial: normalizeSerial(identity.serialNumber),
        sourceAddress: facts.sourceAddress.slice(0, MAX_SOURCE_ADDRESS_LENGTH),
      }),
    ),
    overwrite(DECISION_ID_HEADER, facts.decisionId),
  ]
  // Client-sent x-hsmgate-* headers must not reach the backend. Envoy applies headers_to_remove
  // after the headers it sets, so the headers set here are overwritten rather than removed.
  const setByAllow = new Set(headers.map((h) => h.header.key))
  const headersToRemove = [...requestHeaders.keys()]
    .filter((name) => name.startsWith(RESERVED_HEADER_PREFIX) && !setByAllow.has(name))
    .sort()
  return allowedResponse(headers, headersToRemove)
}

/** The client address: the TCP peer, or the client behind a trusted proxy. */
function sourceAddressOf(request: CheckRequest, proxies: TrustedProxies | undefined): string {
  const address = request.attributes?.source?.address?.socket_address?.address
  const peer = typeof address === 'string' ? address : ''
  if (proxies === undefined) return peer
  const forwarded = collectHeaders(request.attributes?.request?.http).get('x-forwarded-for')
  return clientAddress(peer, forwarded, proxies)
}
