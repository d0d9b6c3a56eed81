/** Request headers that an allow sets. The crypto backend trusts only these. */
export const PRINCIPAL_HEADER = 'x-hsmgate-principal'
export const DECISION_HEADER = 'x-hsmgate-decision'
export const DECISION_ID_HEADER = 'x-hsmgate-decision-id'

/** google.rpc.Code values used in CheckResponse.status. */
const GRPC_OK = 0
const GRPC_PERMISSION_DENIED = 7

/** envoy.config.core.v3.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD */
const OVERWRITE_IF_EXISTS_OR_ADD = 2

export interface HeaderValueOption {
  header: { key: string; value: string }
  append: { value: boolean }
  append_action: number
}

export interface CheckResponse {
  status: { code: number; message: string }
  ok_response?: {
    headers: HeaderValueOption[]
    headers_to_remove: string[]
    response_headers_to_add: HeaderValueOption[]
  }
  denied_response?: {
    status: { code: number }
    headers: HeaderValueOption[]
    body: string
  }
}

/** Error codes in deny bodies, each with its fixed HTTP status. */
export type DenyCode =
  | 'unauthenticated'
  | 'certificate_revoked'
  | 'invalid_key_name'
  | 'unknown_route'
  | 'forbidden'
  | 'key_not_found'
  | 'body_too_large'
  | 'authz_error'
  | 'audit_unavailable'
  | 'store_unavailable'
  | 'certificate_superseded'
  | 'certificate_mismatch'
  | 'quota_exceeded'
  | 'approval_required'

/** A deny with the text for the client and the details for the log. */
export interface Deny {
  readonly status: 400 | 401 | 403 | 404 | 413 | 429 | 503
  readonly code: DenyCode
  /** Text safe to return to the client. */
  readonly message: string
  /** Short machine-readable cause for the log and the audit. */
  readonly reason: string
  /** Ids of the policies that determined a policy deny; returned to the client. */
  readonly policyIds?: readonly string[]
  readonly logFields?: Record<string, unknown>
  /** Extra response headers, such as retry-after on a 429. */
  readonly headers?: Readonly<Record<string, string>>
}

/** Builds the deny answer: the HTTP status and `{"error": {...}}` body Envoy returns. */
export function deniedResponse(decisionId: string, deny: Deny): CheckResponse {
  const error: Record<string, unknown> = {
    code: deny.code,
    message: deny.message,
    decision_id: decisionId,
  }
  if (deny.policyIds !== undefined) error.policy_ids = [...deny.policyIds]
  return {
    status: { code: GRPC_PERMISSION_DENIED, message: deny.code },
    denied_response: {
      status: { code: deny.status },
      headers: [
        overwrite('content-type', 'application/json'),
        overwrite(DECISION_ID_HEADER, decisionId),
        ...Object.entries(deny.headers ?? {}).map(([name, value]) => overwrite(name, value)),
      ],
      body: JSON.stringify({ error }),
    },
  }
}

/** Builds the allow answer that sets `headers` and removes `headersToRemove`. */
export function allowedResponse(
  headers: HeaderValueOption[],
  headersToRemove: string[],
): CheckResponse {
  return {
    status: { code: GRPC_OK, message: '' },
    ok_response: { headers, headers_to_remove: headersToRemove, response_headers_to_add: [] },
  }
}

/**
 * Sets a header, replacing any value the client sent. Both the deprecated `append` field and
 * append_action request an overwrite, so Envoy overwrites whichever of the two it reads.
 */
export function overwrite(key: string, value: string): HeaderValueOption {
  return {
    header: { key, value },
    append: { value: false },
    append_action: OVERWRITE_IF_EXISTS_OR_ADD,
  }
}
