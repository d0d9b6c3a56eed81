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

/**
 * Decisions kept per policy set. A request's certificate age is part of the key, so an entry
 * is reused for at most one second. With keys of about 1 KiB, the bound keeps the cache near
 * 4 MiB (an estimate).
 */
const DECISION_CACHE_ENTRIES = 4096
/** Requests with larger JSON (large encryption contexts) are evaluated every time. */
const MAX_CACHED_REQUEST_CHARS = 4096

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
  /** Least recently used first; a Map iterates in insertion order. */
  private readonly decisions = new Map<string, PolicyDecision>()

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

  /**
   * Decides one request. Throws when the request does not fit the schema. Decisions are cached
   * per engine by the whole Cedar request (entities and context included), so a cached decision
   * is the one Cedar would return: the policy set and schema of an engine never change.
   */
  decide(request: PolicyRequest): PolicyDecision {
    const cedarRequest = toCedarRequest(request)
    const cacheKey = JSON.stringify(cedarRequest)
    const cached = this.decisions.get(cacheKey)
    if (cached !== undefined) {
      this.decisions.delete(cacheKey)
      this.decisions.set(cacheKey, cached)
      return cached
    }
    const decision = this.evaluate(cedarRequest)
    if (cacheKey.length <= MAX_CACHED_REQUEST_CHARS) {
      if (this.decisions.size >= DECISION_CACHE_ENTRIES) {
        this.decisions.delete(this.decisions.keys().next().value as string)
      }
      this.decisions.set(cacheKey, Object.freeze(decision))
    }
    return decision
  }

  private evaluate(cedarRequest: ReturnType<typeof toCedarRequest>): PolicyDecision {
    const answer = cedar.statefulIsAuthorized({
      ...cedarRequest,
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
