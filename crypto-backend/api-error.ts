import type { ContentfulStatusCode } from 'hono/utils/http-status'

/** Stable error codes of the operations API. */
export type ApiErrorCode =
  | 'invalid_json'
  | 'invalid_request'
  | 'invalid_base64'
  | 'invalid_algorithm'
  | 'decrypt_failed'
  | 'key_not_found'
  | 'key_disabled'
  | 'key_destroyed'
  | 'key_exists'
  | 'key_namespace'
  | 'wrong_key_type'
  | 'not_authorized'
  | 'not_found'
  | 'payload_too_large'
  | 'hsm_unavailable'
  | 'audit_unavailable'
  | 'store_unavailable'
  | 'internal_error'
  | 'csr_invalid'
  | 'key_reused'
  | 'token_unknown'
  | 'token_used'
  | 'token_expired'
  | 'certificate_unknown'
  | 'certificate_revoked'
  | 'certificate_expired'
  | 'certificate_superseded'
  | 'enrollment_unavailable'
  | 'approvals_unavailable'
  | 'approval_not_found'
  | 'approval_not_needed'
  | 'approval_limit'
  | 'approval_not_pending'
  | 'approval_expired'
  | 'approver_is_requester'
  | 'approver_not_in_group'
  | 'approver_already_voted'
  | 'attestation_invalid'
  | 'attestation_required'
  | 'attestation_key_unknown'
  | 'attestation_signature_invalid'
  | 'attestation_mismatch'
  | 'attestation_key_attributes'
  | 'nonce_unknown'
  | 'nonce_used'
  | 'nonce_expired'
  | 'nonce_limit'
  | 'ek_certificate_invalid'
  | 'ek_certificate_untrusted'
  | 'activation_failed'
  | 'activation_challenge_unknown'
  | 'activation_challenge_used'
  | 'activation_challenge_expired'

/** An error answered to the caller with its HTTP status and a message safe to show. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ApiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'ApiError'
  }
}

export const invalidRequest = (message: string): ApiError =>
  new ApiError(400, 'invalid_request', message)
