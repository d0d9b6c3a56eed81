import type { Approval } from '../store/store.js'
import type { ApprovalsConfig, ApprovalRuleConfig } from './controls-schema.js'
import type { PolicyKey } from './policy-request.js'

/** SPIFFE path prefix of people, such as approvers: spiffe://<domain>/person/<name>. */
export const PERSON_PATH = '/person/'

/** The approvals an operation needs: `required` distinct members of `group`. */
export interface ApprovalRequirement {
  readonly group: string
  readonly required: number
  /** Source of the requirement: `rule N` (from 1) or `anomaly RULE`. */
  readonly source: string
}

/** Error codes of a rejected vote. */
export type VoteError =
  | 'approval_not_pending'
  | 'approval_expired'
  | 'approver_is_requester'
  | 'approver_not_in_group'
  | 'approver_already_voted'

/** Dual control rules and approver groups, from authz.approvals. */
export class DualControl {
  constructor(readonly config: ApprovalsConfig) {}

  /** Returns the requirement of the first rule that covers the operation on the key, if any. */
  requirement(operation: string, key: PolicyKey | undefined): ApprovalRequirement | undefined {
    const index = this.config.rules.findIndex((rule) => covers(rule, operation, key))
    const rule = this.config.rules[index]
    if (rule === undefined) return undefined
    return { group: rule.group, required: rule.required, source: `rule ${index + 1}` }
  }

  /** Returns whether the person is a member of the group. */
  isMember(group: string, person: string): boolean {
    return (this.config.groups[group] ?? []).includes(person)
  }

  /** Returns the names of the groups the person is a member of. */
  groupsOf(person: string): string[] {
    return Object.entries(this.config.groups)
      .filter(([, members]) => members.includes(person))
      .map(([group]) => group)
  }

  /** Returns whether the person belongs to any approver group. */
  isApprover(person: string): boolean {
    return Object.values(this.config.groups).some((members) => members.includes(person))
  }

  /**
   * Checks a vote against the request before it is stored: the request must be pending and
   * unexpired, and the voter must be a member of its group, not its requester, and must not
   * have voted on it before.
   */
  voteError(
    approval: Approval,
    voter: string,
    trustDomain: string,
    nowMs: number,
  ): VoteError | undefined {
    if (approval.status !== 'pending') return 'approval_not_pending'
    if (Date.parse(approval.expiresAt) <= nowMs) return 'approval_expired'
    if (voter === approval.requester) return 'approver_is_requester'
    const person = personName(voter, trustDomain)
    if (person === undefined || !this.isMember(approval.group, person))
      return 'approver_not_in_group'
    if (approval.votes.some((vote) => vote.approver === voter)) return 'approver_already_voted'
    return undefined
  }
}

function covers(rule: ApprovalRuleConfig, operation: string, key: PolicyKey | undefined): boolean {
  if (!(rule.operations as string[]).includes(operation)) return false
  if (rule.keys !== undefined && (key === undefined || !rule.keys.includes(key.name))) return false
  if (rule.classification !== undefined && key?.classification !== rule.classification) return false
  return true
}

/** Returns the person name of a `spiffe://<domain>/person/<name>` ID, or undefined. */
export function personName(spiffeId: string, trustDomain: string): string | undefined {
  const prefix = `spiffe://${trustDomain}${PERSON_PATH}`
  if (!spiffeId.startsWith(prefix)) return undefined
  const name = spiffeId.slice(prefix.length)
  return /^[a-z0-9][a-z0-9._-]{0,63}$/.test(name) ? name : undefined
}
