import type { Deny } from './check-response.js'

/** Operations of the approvals API, as audit records name them. */
export type ApprovalOperationName =
  'approval-request' | 'approval-list' | 'approval-show' | 'approval-approve' | 'approval-deny'

export interface ApprovalOperation {
  readonly name: ApprovalOperationName
  /** The approval id for show, approve and deny. */
  readonly id?: string
}

/** Approval ids: `ap_` and 16 random bytes as base64url. */
export const APPROVAL_ID_PATTERN = /^ap_[A-Za-z0-9_-]{22}$/

/**
 * Maps a request under /v1/approvals to an approval operation. Returns undefined for any other
 * path, so that the operation table decides it, and an unknown-route deny for an unknown
 * method or id shape under /v1/approvals.
 */
export function resolveApprovalRoute(
  method: string,
  target: string,
): ApprovalOperation | Deny | undefined {
  const path = target.replace(/[?#].*$/s, '')
  if (path !== '/v1/approvals' && !path.startsWith('/v1/approvals/')) return undefined
  const segments = path.split('/').slice(3)
  if (segments.length === 0) {
    if (method === 'POST') return { name: 'approval-request' }
    if (method === 'GET') return { name: 'approval-list' }
    return unknown(method, path)
  }
  const [id = '', action, ...rest] = segments
  if (!APPROVAL_ID_PATTERN.test(id) || rest.length > 0) return unknown(method, path)
  if (action === undefined && method === 'GET') return { name: 'approval-show', id }
  if (action === 'approve' && method === 'POST') return { name: 'approval-approve', id }
  if (action === 'deny' && method === 'POST') return { name: 'approval-deny', id }
  return unknown(method, path)
}

function unknown(method: string, path: string): Deny {
  return {
    status: 404,
    code: 'unknown_route',
    message: `no route for ${`${method} ${path}`.slice(0, 200)}`,
    reason: 'unknown_route',
  }
}
