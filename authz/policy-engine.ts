import * as cedar from '@cedar-policy/cedar-wasm/nodejs'
import { schemaText, type LoadedPolicy, type PolicySource } from './policy-load.js'
import { toCedarRequest, type PolicyRequest } from './policy-request.js'

/** Id reported when no policy permits a request. */
export const DEFAULT_DENY_ID = 'default-deny'
export const DEFAULT_DENY_REASON = 'no policy permits this request'

/** The outcome of one evaluation, with the policies that determined it. */
export interface PolicyDecision {
  readonly allowed: boolean
  /** Determining policies: the satisfied forbids on a deny, the satisfied permits on an allow. */
  readonly policyIds: readonly string[]
  /** Human reason for the client and the audit, from the first determining policy's @reason. */
  readonly reason: string
  /** Policies that failed to evaluate, with the evaluator's message; for logs only. */
  readonly errors: readonly { readonly policyId: string; readonly message: string }[]
}

const SCHEMA_NAME = 'hsmgate'
let schemaReady = false
let nextSetNumber = 0

function prepareSchema(): void {
  if (schemaReady) return
  const answer = cedar.preparseSchema(SCHEMA_NAME, schemaText())
  if (answer.type === 'failure') {
    throw new Error(`hsmgate schema does not parse: ${answer.errors[0]?.message ?? ''}`)
  }
  schemaReady = true
}

/**
 * A validated policy set, parsed once into the Cedar evaluator. Evaluation follows Cedar:
 * default deny, and a satisfied forbid overrides every permit. In addition, a forbid policy that
 * fails to evaluate denies the request, so that an evaluation error never removes a restriction.
 */
export class PolicyEngine {
  readonly version: string
  readonly policies: ReadonlyMap<string, LoadedPolicy>
  private readonly setId: string

  constructor(source: PolicySource) {
    prepareSchema()
    this.version = source.version
    this.policies = source.policies
    this.setId = `hsmgate-${nextSetNumber++}-${source.version}`
    const texts: Record<string, string> = {}
    for (const [id, policy] of source.policies) texts[id] = policy.text
    const answer = cedar.preparsePolicySet(this.setId, { staticPolicies: texts })
    if (answer.type === 'failure') {
      throw new Error(`policy set does not parse: ${answer.errors[0]?.message ?? ''}`)
    }
  }

  /** Decides one request. Throws when the request does not fit the schema. */
  decide(request: PolicyRequest): PolicyDecision {
    const answer = cedar.statefulIsAuthorized({
      ...toCedarRequest(request),
      preparsedSchemaName: SCHEMA_NAME,
      validateRequest: true,
      preparsedPolicySetId: this.setId,
    })
    if (answer.type === 'failure') {
      const messages = answer.errors.map((e) => e.message).join('; ')
      throw new Error(`request does not fit the hsmgate schema: ${messages}`)
    }
    const { decision, diagnostics } = answer.response
    const errors = diagnostics.errors.map((e) => ({
      policyId: e.policyId,
      message: e.error.message,
    }))
    const failedForbids = errors
      .map((e) => e.policyId)
      .filter((id) => this.policies.get(id)?.effect === 'forbid')
    if (failedForbids.length > 0) {
      return this.deny(failedForbids, errors)
    }
    if (decision === 'allow') {
      return {
        allowed: true,
        policyIds: diagnostics.reason,
        reason: this.reasonOf(diagnostics.reason),
        errors,
      }
    }
    return diagnostics.reason.length === 0
      ? { allowed: false, policyIds: [DEFAULT_DENY_ID], reason: DEFAULT_DENY_REASON, errors }
      : this.deny(diagnostics.reason, errors)
  }

  private deny(ids: readonly string[], errors: PolicyDecision['errors']): PolicyDecision {
    return {
      allowed: false,
      policyIds: [...ids].sort(),
      reason: this.reasonOf([...ids].sort()),
      errors,
    }
  }

  private reasonOf(ids: readonly string[]): string {
    for (const id of ids) {
      const reason = this.policies.get(id)?.annotations.reason
      if (reason !== undefined && reason !== '') return reason
    }
    return ids.length === 0 ? '' : `policy ${ids[0]} applies`
  }
}
