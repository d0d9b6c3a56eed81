import { randomBytes } from 'node:crypto'
import type { Context, Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { personName, type DualControl } from '../../authz/approval-rules.js'
import { QUOTA_EXTENSION, type QuotaConfig } from '../../authz/controls-schema.js'
import { KEY_NAME_PATTERN } from '../../authz/operation.js'
import type { Approval, ApprovalVote, ControlRecords, KeyVersion } from '../../store/store.js'
import { ApiError, invalidRequest } from '../api-error.js'
import type { BackendEnv } from '../context.js'
import { durationMs } from '../pki/duration.js'
import { parseJsonObject, rejectUnknownFields } from '../request-body.js'

/** Dependencies of the approvals API: the rules, the store tables and the trust domain. */
export interface ApprovalsDeps {
  readonly dualControl: DualControl
  readonly controls: ControlRecords
  readonly trustDomain: string
  readonly quotas: readonly QuotaConfig[]
  readonly maxTtlMs: number
  /** Pending, unexpired requests one requester may have; another request gets 429. */
  readonly maxPending: number
  readonly keyVersions: (name: string) => Promise<KeyVersion[]>
  readonly now?: () => number
}

/** Lifetime of a request without `ttl`, capped by authz.approvals.max_ttl. */
const DEFAULT_TTL_MS = 15 * 60_000
const MAX_USES = 1000
const MAX_EXTRA = 1_000_000
/** Requests listed per page without `limit`, and the largest `limit` a caller may ask for. */
const LIST_DEFAULT = 100
const LIST_MAX = 200
const LIST_MAX_OFFSET = 100_000
const DIGEST_PATTERN = /^[0-9a-f]{64}$/

/**
 * Registers the approvals API: POST /v1/approvals requests approvals, GET lists and shows,
 * POST /v1/approvals/:id/approve and /deny vote. authz decides who may call each route;
 * the routes check each vote against its request in one store transaction.
 */
export function registerApprovalRoutes(
  app: Hono<BackendEnv>,
  deps: ApprovalsDeps | undefined,
): void {
  const need = (): ApprovalsDeps => {
    if (deps === undefined) {
      throw new ApiError(
        503,
        'approvals_unavailable',
        'approvals are not configured on this backend',
      )
    }
    return deps
  }

  app.post('/v1/approvals', async (c) => {
    c.get('audit').operation = 'approval-request'
    const body = parseJsonObject(c.get('body'))
    const approval = await createApproval(need(), c.get('principal'), body)
    c.get('audit').key = approval.key
    return c.json({ ...view(approval), decision_id: c.get('decisionId') }, 201)
  })

  app.get('/v1/approvals', async (c) => {
    c.get('audit').operation = 'approval-list'
    const d = need()
    const principal = c.get('principal')
    const person = personName(principal, d.trustDomain)
    // The store filters by visibility before it limits, so other requesters' requests cannot
    // push the caller's own out of the page.
    const visible = await d.controls.listApprovals({
      requester: principal,
      groups: person === undefined ? [] : d.dualControl.groupsOf(person),
      now: new Date((d.now ?? Date.now)()).toISOString(),
      limit: queryInteger(c.req.query('limit'), 'limit', 1, LIST_MAX, LIST_DEFAULT),
      offset: queryInteger(c.req.query('offset'), 'offset', 0, LIST_MAX_OFFSET, 0),
    })
    return c.json({ approvals: visible.map(view), decision_id: c.get('decisionId') })
  })

  app.get('/v1/approvals/:id', async (c) => {
    c.get('audit').operation = 'approval-show'
    const approval = await visibleApproval(need(), c)
    return c.json({ ...view(approval), decision_id: c.get('decisionId') })
  })

  for (const vote of ['approve', 'deny'] as const) {
    app.post(`/v1/approvals/:id/${vote}`, async (c) => {
      c.get('audit').operation = `approval-${vote}`
      const d = need()
      // The body is empty or an empty JSON object.
      const body = c.get('body')
      if (body.length > 0) rejectUnknownFields(parseJsonObject(body), [])
      const voter = c.get('principal')
      const now = (d.now ?? Date.now)()
      const record: ApprovalVote = { approver: voter, vote, at: new Date(now).toISOString() }
      // The store runs the check on the request as it is inside the vote's transaction, so
      // concurrent votes cannot both pass a check that only one of them may pass.
      const result = await d.controls.vote(c.req.param('id'), record, (approval) =>
        d.dualControl.voteError(approval, voter, d.trustDomain, now),
      )
      if ('error' in result) throw voteError(result.error)
      c.get('audit').key = result.key
      return c.json({ ...view(result), decision_id: c.get('decisionId') })
    })
  }
}

async function createApproval(
  d: ApprovalsDeps,
  requester: string,
  body: Record<string, unknown>,
): Promise<Approval> {
  rejectUnknownFields(body, ['operation', 'key', 'params_digest', 'uses', 'ttl', 'quota', 'extra'])
  const operation = stringField(body, 'operation')
  const now = (d.now ?? Date.now)()
  const ttlMs = ttlOf(body, d.maxTtlMs)
  const base = {
    id: `ap_${randomBytes(16).toString('base64url')}`,
    requester,
    operation,
    status: 'pending' as const,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + ttlMs).toISOString(),
  }
  const approval =
    operation === QUOTA_EXTENSION
      ? { ...base, ...quotaExtensionFields(d, requester, body) }
      : { ...base, ...(await operationFields(d, requester, operation, body)) }
  const limit = { maxPending: d.maxPending, now: base.createdAt }
  if (!(await d.controls.createApproval(approval, limit))) {
    throw new ApiError(
      429,
      'approval_limit',
      `${requester} already has ${d.maxPending} pending approval requests ` +
        '(authz.approvals.max_pending); wait until approvers decide them or they expire',
    )
  }
  return { ...approval, votes: [] }
}

async function operationFields(
  d: ApprovalsDeps,
  requester: string,
  operation: string,
  body: Record<string, unknown>,
) {
  const keyName = body.key === undefined ? null : stringField(body, 'key')
  if (keyName !== null && !KEY_NAME_PATTERN.test(keyName)) {
    throw invalidRequest(`field 'key' must be a key name, got ${JSON.stringify(keyName)}`)
  }
  const key = keyName === null ? undefined : (await d.keyVersions(keyName))[0]
  if (keyName !== null && key === undefined) {
    throw new ApiError(404, 'key_not_found', `no key named '${keyName}'`)
  }
  const digest = stringField(body, 'params_digest')
  if (!DIGEST_PATTERN.test(digest)) {
    throw invalidRequest("field 'params_digest' must be the hex SHA-256 of the request body")
  }
  const app = appName(requester, d.trustDomain)
  const hold = app === undefined ? undefined : await d.controls.hold(app)
  const rule = d.dualControl.requirement(operation, key)
  const requirement =
    rule ?? (hold === undefined ? undefined : { group: hold.group, required: hold.required })
  if (requirement === undefined) {
    throw new ApiError(
      400,
      'approval_not_needed',
      `no dual control rule covers ${operation}${keyName === null ? '' : ` with key '${keyName}'`}`,
    )
  }
  const uses = integerField(body, 'uses', 1, MAX_USES, 1)
  return {
    key: keyName,
    paramsDigest: digest,
    quota: null,
    extra: 0,
    group: requirement.group,
    required: requirement.required,
    uses,
    usesLeft: uses,
  }
}

function quotaExtensionFields(d: ApprovalsDeps, requester: string, body: Record<string, unknown>) {
  const quota = stringField(body, 'quota')
  const app = appName(requester, d.trustDomain)
  const known = d.quotas.some(
    (q, index) => (q.name ?? `quota-${index + 1}`) === quota && q.app === app,
  )
  if (!known) throw invalidRequest(`no quota named '${quota}' applies to ${requester}`)
  const requirement = d.dualControl.requirement(QUOTA_EXTENSION, undefined)
  if (requirement === undefined) {
    throw new ApiError(400, 'approval_not_needed', 'no dual control rule covers quota-extension')
  }
  return {
    key: null,
    paramsDigest: '',
    quota,
    extra: integerField(body, 'extra', 1, MAX_EXTRA, undefined),
    group: requirement.group,
    required: requirement.required,
    uses: 0,
    usesLeft: 0,
  }
}

/** The requester sees its own requests; an approver sees the requests of its groups. */
function canSee(d: ApprovalsDeps, principal: string, approval: Approval): boolean {
  if (approval.requester === principal) return true
  const person = personName(principal, d.trustDomain)
  return person !== undefined && d.dualControl.isMember(approval.group, person)
}

async function visibleApproval(d: ApprovalsDeps, c: Context<BackendEnv>): Promise<Approval> {
  const approval = await d.controls.approval(c.req.param('id') ?? '')
  if (approval === undefined || !canSee(d, c.get('principal'), approval)) {
    throw new ApiError(404, 'approval_not_found', 'no such approval request')
  }
  return approval
}

/** Returns the JSON form of an approval request: the parameters' digest, never the parameters. */
function view(approval: Approval) {
  return {
    id: approval.id,
    requester: approval.requester,
    operation: approval.operation,
    key: approval.key,
    params_digest: approval.paramsDigest,
    quota: approval.quota,
    extra: approval.extra,
    group: approval.group,
    required: approval.required,
    approvals: approval.votes.filter((v) => v.vote === 'approve').length,
    uses: approval.uses,
    uses_left: approval.usesLeft,
    status: approval.status,
    created_at: approval.createdAt,
    expires_at: approval.expiresAt,
    votes: approval.votes,
  }
}

const VOTE_STATUS: Record<string, ContentfulStatusCode> = {
  approval_not_found: 404,
  approval_not_pending: 409,
  approval_expired: 409,
  approver_is_requester: 403,
  approver_not_in_group: 403,
  approver_already_voted: 409,
}

const VOTE_MESSAGE: Record<string, string> = {
  approval_not_found: 'no such approval request',
  approval_not_pending: 'the approval request is no longer pending',
  approval_expired: 'the approval request has expired',
  approver_is_requester: 'the requester may not approve its own request',
  approver_not_in_group: "the approver is not a member of the request's group",
  approver_already_voted: 'this approver has already voted on the request',
}

function voteError(code: string): ApiError {
  return new ApiError(
    VOTE_STATUS[code] ?? 400,
    code as ConstructorParameters<typeof ApiError>[1],
    VOTE_MESSAGE[code] ?? code,
  )
}

function appName(principal: string, trustDomain: string): string | undefined {
  const prefix = `spiffe://${trustDomain}/app/`
  return principal.startsWith(prefix) ? principal.slice(prefix.length) : undefined
}

function stringField(body: Record<string, unknown>, field: string): string {
  const value = body[field]
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) {
    throw invalidRequest(
      `field '${field}' must be a non-empty string, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

function integerField(
  body: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
  fallback: number | undefined,
): number {
  const value = body[field] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidRequest(
      `field '${field}' must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

function ttlOf(body: Record<string, unknown>, maxTtlMs: number): number {
  if (body.ttl === undefined) return Math.min(DEFAULT_TTL_MS, maxTtlMs)
  const text = stringField(body, 'ttl')
  let ms: number
  try {
    ms = durationMs(text)
  } catch (error) {
    throw invalidRequest(`field 'ttl': ${(error as Error).message}`)
  }
  if (ms < 1000 || ms > maxTtlMs) {
    throw invalidRequest(
      `field 'ttl' ${text} must be from 1s to ${maxTtlMs / 1000}s (authz.approvals.max_ttl)`,
    )
  }
  return ms
}

function queryInteger(
  text: string | undefined,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (text === undefined) return fallback
  const value = /^[0-9]{1,9}$/.test(text) ? Number(text) : Number.NaN
  if (!(value >= min && value <= max)) {
    throw invalidRequest(
      `query parameter '${name}' must be an integer from ${min} to ${max}, got ` +
        JSON.stringify(text.slice(0, 40)),
    )
  }
  return value
}
