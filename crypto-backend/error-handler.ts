import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { Logger } from '../log/logger.js'
import { ApiError, type ApiErrorCode } from './api-error.js'
import type { BackendEnv } from './context.js'
import { KeyTypeRequestError } from '../store/key-type-request.js'
import { StoreUnavailableError } from '../store/store-unavailable.js'
import { HsmError } from './hsm/index.js'

/** Maps an HSM failure to the error the caller receives. Details stay in the log. */
function fromHsmError(error: HsmError): ApiError {
  switch (error.code) {
    case 'hsm_decrypt_failed':
      return new ApiError(
        400,
        'decrypt_failed',
        'decryption failed: the ciphertext was modified or the encryption context differs',
      )
    case 'hsm_key_not_found':
      return new ApiError(503, 'hsm_unavailable', 'key material is missing on the HSM cluster')
    default:
      return new ApiError(503, 'hsm_unavailable', 'the HSM cluster could not run the operation')
  }
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  if (error instanceof HsmError) return fromHsmError(error)
  if (error instanceof KeyTypeRequestError)
    return new ApiError(400, 'invalid_request', error.message)
  if (error instanceof StoreUnavailableError) {
    return new ApiError(503, 'store_unavailable', 'the state store is unavailable; try again later')
  }
  return new ApiError(500, 'internal_error', 'internal error')
}

/**
 * Creates the one place where errors become HTTP answers of the form
 * `{"error": {"code", "message", "decision_id"}}`.
 */
export function errorHandler(logger: Logger) {
  return (error: Error, c: Context<BackendEnv>): Response => {
    const api = toApiError(error)
    const decisionId = c.get('decisionId') ?? null
    const audit = c.get('audit')
    if (audit !== undefined) audit.errorCode = api.code
    if (api.status >= 500) {
      logger.error({ err: error, decision_id: decisionId, code: api.code }, 'operation failed')
    }
    return errorResponse(c, api.status, api.code, api.message, decisionId)
  }
}

export function errorResponse(
  c: Context<BackendEnv>,
  status: ContentfulStatusCode,
  code: ApiErrorCode,
  message: string,
  decisionId: string | null,
): Response {
  return c.json({ error: { code, message, decision_id: decisionId } }, status)
}
