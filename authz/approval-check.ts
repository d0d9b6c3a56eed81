import type { Logger } from '../log/logger.js'
import type { Application } from '../store/store.js'
import type { ApprovalOperation } from './approval-routes.js'
import { personName, type DualControl } from './approval-rules.js'
import type { Deny } from './check-response.js'
import { detectClone, type CloneDetection } from './clone-detection.js'
import { observeUsage, type RuntimeControls } from './controls.js'
import type { PeerIdentity } from './identity.js'
import { KEY_NAME_PATTERN } from './operation.js'
import { sourceMatchesHost } from './request-facts.js'

const APPLICATION_ID_PATTERN = /^spiffe:\/\/([^/]+)\/app\/([A-Za-z0-9._-]{1,128})$/

/**
 * Decides a call of the approvals API. People in an approver group may list, show, approve and
 * deny; a registered application that is not suspended may request, list and show. The backend
 * then checks each vote against the request: group, requester and earlier votes. Returns the
 * deny, or undefined to allow.
 */
export async function approvalRouteDeny(
  route: ApprovalOperation,
  spiffeId: string,
  trustDomain: string,
  dualControl: DualControl | undefined,
  application: (name: string) => Promise<Application | undefined>,
): Promise<Deny | undefined> {
  const forbidden = (why: string): Deny => ({
    status: 403,
    code: 'forbidden',
    message: `principal ${spiffeId} may not ${route.name.replace('approval-', '')} approvals: ${why}`,
    reason: 'approval_forbidden',
  })
  if (dualControl === undefined) return forbidden('dual control is not configured')
  const person = personName(spiffeId, trustDomain)
  if (person !== undefined) {
    if (!dualControl.isApprover(person)) return forbidden('not a member of any approver group')
    if (route.name === 'approval-request') return forbidden('people approve; applications request')
    return undefined
  }
  const match = APPLICATION_ID_PATTERN.exec(spiffeId)
  const app =
    match !== null && match[1] === trustDomain ? await application(match[2] as string) : undefined
  if (app === undefined) return forbidden('not a registered application or approver')
  if (app.suspended) return forbidden('the application is suspended')
  if (route.name === 'approval-approve' || route.name === 'approval-deny') {
    return forbidden('only members of an approver group vote')
  }
  return undefined
}

/** The facts of one call of the approvals API that the runtime controls check. */
export interface ApprovalCall {
  readonly route: ApprovalOperation
  readonly identity: PeerIdentity
  readonly sourceAddress: string
  readonly body: Uint8Array
  readonly decisionId: string
  readonly nowMs: number
}

/** The controls that apply to approvals API calls; each is off when absent. */
export interface ApprovalCallControls {
  readonly trustDomain: string
  readonly application: (name: string) => Promise<Application | undefined>
  readonly cloneDetection?: CloneDetection
  readonly controls?: RuntimeControls
  readonly logger: Logger
}

/**
 * Runs the controls of the operations API on a call of the approvals API, after
 * approvalRouteDeny allowed it. For an application it runs clone detection, then the anomaly
 * rules with the route as the operation and the body's key as the key, so their alerts and
 * suspension act as for any operation. Then it requires host binding in every case. The source
 * address must be an IP SAN of the certificate or, for a certificate without IP SANs, a
 * registered address of the application. A person must call from an IP SAN of the certificate
 * when it has any. Returns the deny, or undefined to allow.
 */
export async function approvalCallDeny(
  call: ApprovalCall,
  checks: ApprovalCallControls,
): Promise<Deny | undefined> {
  const appName = applicationName(call.identity.principal, checks.trustDomain)
  if (appName === undefined) {
    const unbound = call.identity.ipAddresses.length === 0
    if (unbound || sourceMatchesHost(call.sourceAddress, undefined, call.identity.ipAddresses)) {
      return undefined
    }
    return notFromHost(call, 'an IP address of the certificate')
  }
  let application = await checks.application(appName)
  if (application === undefined) return undefined
  if (checks.cloneDetection !== undefined) {
    const clone = await detectClone(
      checks.cloneDetection,
      application,
      call.identity,
      call.decisionId,
      checks.logger,
    )
    if (clone !== undefined) return clone
  }
  if (checks.controls !== undefined) {
    application = await observeUsage(
      checks.controls,
      application,
      {
        identity: call.identity,
        operation: call.route.name,
        key: call.route.name === 'approval-request' ? bodyKey(call.body) : undefined,
        sourceAddress: call.sourceAddress,
        body: call.body,
        decisionId: call.decisionId,
        nowMs: call.nowMs,
      },
      checks.logger,
    )
    if (application.suspended) {
      return {
        status: 403,
        code: 'forbidden',
        message: `principal ${call.identity.principal} may not use approvals: the application is suspended`,
        reason: 'approval_forbidden',
      }
    }
  }
  if (!sourceMatchesHost(call.sourceAddress, application, call.identity.ipAddresses)) {
    return notFromHost(call, 'a host registered for the application')
  }
  return undefined
}

function notFromHost(call: ApprovalCall, where: string): Deny {
  return {
    status: 403,
    code: 'forbidden',
    message: `approvals API calls must come from ${where}`,
    reason: 'approval_source_not_host',
    logFields: { source_address: call.sourceAddress.slice(0, 64) },
  }
}

/** Returns the `key` string of a JSON object body, or undefined. */
function bodyKey(body: Uint8Array): string | undefined {
  try {
    const value = JSON.parse(Buffer.from(body).toString('utf8')) as unknown
    if (typeof value !== 'object' || value === null) return undefined
    const key = (value as Record<string, unknown>).key
    return typeof key === 'string' && KEY_NAME_PATTERN.test(key) ? key : undefined
  } catch {
    return undefined
  }
}

function applicationName(spiffeId: string, trustDomain: string): string | undefined {
  const match = APPLICATION_ID_PATTERN.exec(spiffeId)
  return match !== null && match[1] === trustDomain ? match[2] : undefined
}
