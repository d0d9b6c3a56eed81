import type { Logger } from '../log/logger.js'
import { deniedResponse, type CheckResponse, type Deny } from './check-response.js'
import type { CheckRequest } from './check-request.js'
import type { DecisionAuditor } from './decision-audit.js'
import type { PeerIdentity } from './identity.js'
import type { Operation } from './operation.js'
import type { ApprovalOperation } from './approval-routes.js'
import { recordDecision } from '../metrics/authz-metrics.js'
import { normalizeSerial } from '../store/certificate-serial.js'

/** Facts about a request while it is decided, for the log and the audit. */
export interface Facts {
  decisionId: string
  method: string
  path: string
  startedMs: number
  sourceAddress: string
  body: Uint8Array
  identity?: PeerIdentity
  operation?: Operation | ApprovalOperation
  /** Name of the registered application the principal resolved to; a metrics label. */
  application?: string
  /** Whether the operation's key exists in the store, so its name may be a metrics label. */
  keyKnown?: boolean
}

/** A decision: a deny, or an allow with Envoy's answer and the permitting policies. */
export type Outcome =
  | { allow: false; deny: Deny }
  | { allow: true; headers: CheckResponse; policyIds: readonly string[]; reason: string }

/** Returns the 503 deny for an unexpected error, which never becomes an allow. */
export function internalError(): Deny {
  return {
    status: 503,
    code: 'authz_error',
    message: 'authorization is unavailable; try again later',
    reason: 'authz_error',
  }
}

/** Returns the 503 deny for a store that could not be read, which never becomes an allow. */
export function storeUnavailable(): Deny {
  return {
    status: 503,
    code: 'store_unavailable',
    message: 'authorization is unavailable; try again later',
    reason: 'store_unavailable',
  }
}

/** Audits and logs the outcome, then returns Envoy's answer. It never rejects. */
export async function finish(
  options: { readonly audit: DecisionAuditor; readonly logger: Logger },
  request: CheckRequest,
  facts: Facts,
  outcome: Outcome,
): Promise<CheckResponse> {
  const http = request.attributes?.request?.http
  const deny = outcome.allow ? undefined : outcome.deny
  const policyIds = outcome.allow ? outcome.policyIds : (deny?.policyIds ?? [])
  const reason = outcome.allow ? outcome.reason : (deny?.reason ?? '')
  const fields = {
    decision_id: facts.decisionId,
    request_id: http?.id || undefined,
    method: facts.method.slice(0, 16),
    path: facts.path.slice(0, 256),
    principal: facts.identity?.principal ?? null,
    cert_serial:
      facts.identity === undefined ? undefined : normalizeSerial(facts.identity.serialNumber),
    source_address: facts.sourceAddress.slice(0, 64) || undefined,
    operation: facts.operation?.name ?? null,
    key: facts.operation !== undefined && 'key' in facts.operation ? facts.operation.key : null,
    policy_ids: policyIds,
  }
  try {
    await options.audit({
      decisionId: facts.decisionId,
      principal: fields.principal ?? undefined,
      certSerial: fields.cert_serial,
      sourceAddress: facts.sourceAddress.slice(0, 64),
      operation: fields.operation ?? undefined,
      key: fields.key ?? undefined,
      allowed: outcome.allow,
      status: deny?.status ?? 200,
      code: deny?.code,
      policyIds,
      reason,
      body: facts.body,
      startedMs: facts.startedMs,
    })
  } catch (error) {
    options.logger.error({ ...fields, err: error }, 'audit write failed; request denied')
    observeDecision(facts, false, 503)
    return deniedResponse(facts.decisionId, {
      status: 503,
      code: 'audit_unavailable',
      message: 'the decision could not be audited; try again later',
      reason: 'audit_unavailable',
    })
  }
  const result = outcome.allow ? 'allow' : 'deny'
  const extra = deny === undefined ? {} : { http_status: deny.status, ...deny.logFields }
  options.logger.info({ ...fields, result, reason, ...extra }, 'authorization decision')
  observeDecision(facts, outcome.allow, deny?.status ?? 200)
  return outcome.allow ? outcome.headers : deniedResponse(facts.decisionId, outcome.deny)
}

/**
 * Counts the decision in the metrics. A key name becomes a label only when the key exists, or
 * when create-key was allowed and so creates it, which keeps the label set bounded by the store.
 */
function observeDecision(facts: Facts, allowed: boolean, status: number): void {
  const operation = facts.operation
  const named = operation !== undefined && 'key' in operation
  const creates = allowed && operation?.name === 'create-key'
  const key = named && (facts.keyKnown === true || creates) ? operation.key : undefined
  const seconds = (performance.now() - facts.startedMs) / 1000
  recordDecision(
    { operation: operation?.name, key, application: facts.application, allowed, status },
    seconds,
  )
}
