import type { Application } from '../store/store.js'
import type { ApprovalOperation } from './approval-routes.js'
import { personName, type DualControl } from './approval-rules.js'
import type { Deny } from './check-response.js'

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
  const match = /^spiffe:\/\/([^/]+)\/app\/([A-Za-z0-9._-]{1,128})$/.exec(spiffeId)
  const app =
    match !== null && match[1] === trustDomain ? await application(match[2] as string) : undefined
  if (app === undefined) return forbidden('not a registered application or approver')
  if (app.suspended) return forbidden('the application is suspended')
  if (route.name === 'approval-approve' || route.name === 'approval-deny') {
    return forbidden('only members of an approver group vote')
  }
  return undefined
}
