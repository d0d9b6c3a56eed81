import type { PolicyKey } from './policy-request.js'
import type { PolicyPrincipal } from './policy-request.js'

/** The classification the backend gives every key it creates. */
const CREATED_CLASSIFICATION = 'confidential'
const MAX_TAGS = 64

/**
 * The key a create-key request would make, for policies to judge before it exists: the name
 * from the path, type and tags from the JSON body, the calling application as owner and the
 * backend's default classification, as the backend records them. A body field of the wrong
 * type yields an empty value, because the backend rejects such a body before it creates anything.
 */
export function prospectiveKey(
  name: string,
  principal: PolicyPrincipal,
  body: Uint8Array,
): PolicyKey {
  const fields = jsonObject(body)
  const tags =
    Array.isArray(fields.tags) && fields.tags.every((t) => typeof t === 'string')
      ? (fields.tags as string[]).slice(0, MAX_TAGS)
      : []
  return {
    name,
    type: typeof fields.type === 'string' ? fields.type : '',
    owner:
      principal.kind === 'application' ? principal.application.name : `service:${principal.name}`,
    tags,
    classification: CREATED_CLASSIFICATION,
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
