import type { Logger } from '../log/logger.js'
import type { Application, ControlRecords, GrantMatch } from '../store/store.js'
import type { Alerter } from './alert.js'
import type { AnomalyDetector, Finding } from './anomaly.js'
import type { ApprovalRequirement, DualControl } from './approval-rules.js'
import type { Deny } from './check-response.js'
import { bodyDigest } from './decision-header.js'
import type { PeerIdentity } from './identity.js'
import type { PolicyKey, PolicyPrincipal } from './policy-request.js'
import type { QuotaEnforcer } from './quota.js'

/** The store operations the runtime controls use. */
export type ControlState = Pick<
  ControlRecords,
  'peekGrant' | 'useGrant' | 'hold' | 'putHold' | 'approval'
>

/** Quotas, anomaly rules, alerts and dual control; each part is off when absent. */
export interface RuntimeControls {
  readonly state: ControlState
  readonly alerter: Alerter
  /** Marks an application suspended in the store. */
  readonly suspend: (app: Application) => Promise<void>
  readonly quotas?: QuotaEnforcer
  readonly anomalies?: AnomalyDetector
  readonly dualControl?: DualControl
}

/** The request facts the controls look at. */
export interface ControlledRequest {
  readonly identity: PeerIdentity
  readonly operation: string
  readonly key: string | undefined
  readonly sourceAddress: string
  readonly body: Uint8Array
  readonly decisionId: string
  readonly nowMs: number
}

/**
 * Runs the anomaly rules for an application's request and carries out their actions: an alert
 * for each finding, suspension of the application, and an approval hold. Returns the
 * application as the policies must see it, suspended when a rule suspended it.
 */
export async function observeUsage(
  controls: RuntimeControls,
  application: Application,
  request: ControlledRequest,
  logger: Logger,
): Promise<Application> {
  if (controls.anomalies === undefined) return application
  const findings = await controls.anomalies.observe({
    app: application.name,
    knownAddresses: application.addresses,
    sourceAddress: request.sourceAddress,
    serial: request.identity.serialNumber,
    operation: request.operation,
    key: request.key,
    nowMs: request.nowMs,
  })
  let result = application
  for (const finding of findings) {
    result = await act(controls, result, finding, request, logger)
  }
  return result
}

async function act(
  controls: RuntimeControls,
  application: Application,
  finding: Finding,
  request: ControlledRequest,
  logger: Logger,
): Promise<Application> {
  let result = application
  if (finding.actions.includes('suspend') && !result.suspended) {
    result = { ...result, suspended: true }
    await controls.suspend(result)
    logger.warn(
      { app: result.name, rule: finding.rule },
      'application suspended: active -> suspended',
    )
  }
  if (finding.actions.includes('require_approval') && finding.approvalGroup !== undefined) {
    await controls.state.putHold({
      app: result.name,
      rule: finding.rule,
      group: finding.approvalGroup,
      required: finding.approvalsRequired,
      createdAt: new Date(request.nowMs).toISOString(),
    })
  }
  const actions = finding.actions.filter((action) => action !== 'alert')
  if (finding.actions.includes('alert')) {
    controls.alerter.raise({
      rule: finding.rule,
      app: result.name,
      subject: finding.subject,
      message: finding.message,
      decisionId: request.decisionId,
      actions,
      ...(finding.details === undefined ? {} : { details: finding.details }),
    })
  } else {
    // A rule without the alert action is still logged, so that its action can be traced.
    logger.warn(
      { anomaly: finding.rule, app: result.name, subject: finding.subject, actions },
      `anomaly: ${finding.message}`,
    )
  }
  return result
}

/** The dual control state of one request: whether a grant covers it, and how to use it. */
export type ApprovalGate =
  | { readonly deny: Deny }
  | {
      readonly deny?: undefined
      readonly granted: boolean
      readonly take: () => Promise<Deny | undefined>
    }

const NO_APPROVAL: ApprovalGate = { granted: false, take: async () => undefined }

/**
 * Finds the approvals a request needs, from the dual control rules or from an anomaly hold on
 * the application, and a grant bound to this requester, operation, key and body digest. Without
 * a grant the request is denied with `approval_required`. With one, `take` uses it once after
 * the policies allowed the request.
 */
export async function approvalGate(
  controls: RuntimeControls | undefined,
  principal: PolicyPrincipal,
  key: PolicyKey | undefined,
  request: ControlledRequest,
): Promise<ApprovalGate> {
  if (controls === undefined || principal.kind !== 'application') return NO_APPROVAL
  const requirement = await requirementOf(
    controls,
    principal.application.name,
    request.operation,
    key,
  )
  if (requirement === undefined) return NO_APPROVAL
  const now = new Date(request.nowMs).toISOString()
  const match: GrantMatch = {
    requester: request.identity.principal,
    operation: request.operation,
    key: request.key ?? null,
    paramsDigest: bodyDigest(request.body),
  }
  const required = approvalRequired(requirement, match)
  if ((await controls.state.peekGrant(match, now)) === undefined) return { deny: required }
  // The peeked grant may be used up by another request before `take`; useGrant is atomic and
  // its result, not the peek, decides.
  return {
    granted: true,
    take: async () =>
      (await controls.state.useGrant(match, now)) === undefined ? required : undefined,
  }
}

async function requirementOf(
  controls: RuntimeControls,
  app: string,
  operation: string,
  key: PolicyKey | undefined,
): Promise<ApprovalRequirement | undefined> {
  const fromRule = controls.dualControl?.requirement(operation, key)
  if (fromRule !== undefined) return fromRule
  const hold = await controls.state.hold(app)
  if (hold === undefined) return undefined
  return { group: hold.group, required: hold.required, source: `anomaly ${hold.rule}` }
}

/**
 * Returns the `approval_required` deny. Its message names the command that requests the grant,
 * with placeholders for the caller's gateway URL, CA file, certificate and key.
 */
export function approvalRequired(requirement: ApprovalRequirement, match: GrantMatch): Deny {
  return {
    status: 403,
    code: 'approval_required',
    message:
      `${match.operation}${match.key === null ? '' : ` with key '${match.key}'`} needs ` +
      `${requirement.required} approvals from group '${requirement.group}'; run 'hsmgate ` +
      'approvals request --gateway URL --ca CA_FILE --cert CERT_FILE --tls-key KEY_FILE ' +
      `--operation ${match.operation}` +
      `${match.key === null ? '' : ` --key ${match.key}`} --digest ${match.paramsDigest}'`,
    reason: 'approval_required',
    logFields: { approval_source: requirement.source, params_digest: match.paramsDigest },
  }
}
