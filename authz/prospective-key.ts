import { keyTypeOf, KeyTypeRequestError, tagsOf } from '../store/key-type-request.js'
import type { PolicyKey } from './policy-request.js'
import type { PolicyPrincipal } from './policy-request.js'

/** The classification the backend gives every key it creates. */
const CREATED_CLASSIFICATION = 'confidential'

/**
 * The key a create-key request would make, for policies to judge before it exists: the name
 * from the path, the type and tags that the backend will store (read by the same functions),
 * the calling application as owner and the backend's default classification. An invalid type
 * or tag list yields an empty value, because the backend rejects such a body with a 400.
 */
export function prospectiveKey(
  name: string,
  principal: PolicyPrincipal,
  body: Uint8Array,
): PolicyKey {
  const fields = jsonObject(body)
  return {
    name,
    type: storedOrEmpty(() => keyTypeOf(fields), ''),
    tags: storedOrEmpty(() => tagsOf(fields), []),
    owner:
      principal.kind === 'application' ? principal.application.name : `service:${principal.name}`,
    classification: CREATED_CLASSIFICATION,
  }
}

/**
 * Returns what the backend will store for a field, or `empty` when the backend will reject the
 * body with a 400 and create nothing.
 */
function storedOrEmpty<T>(read: () => T, empty: T): T {
  try {
    return read()
  } catch (error) {
    if (error instanceof KeyTypeRequestError) return empty
    throw error
  }
}

function jsonObject(body: Uint8Array): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(body).toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}
