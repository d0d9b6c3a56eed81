import { ApiError, invalidRequest } from './api-error.js'

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Parses a JSON object body. Anything else is a 400 whose message names what was received. */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(body).toString('utf8'))
  } catch (error) {
    throw new ApiError(
      400,
      'invalid_json',
      `request body is not valid JSON: ${(error as Error).message}`,
    )
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ApiError(400, 'invalid_json', 'request body must be a JSON object')
  }
  return value as Record<string, unknown>
}

/** Decodes standard base64 (RFC 4648 section 4, padding optional), rejecting any other text. */
export function base64Field(body: Record<string, unknown>, field: string): Buffer {
  const value = body[field]
  if (typeof value !== 'string') {
    throw invalidRequest(`field '${field}' must be a base64 string`)
  }
  if (value.length % 4 === 1 || !BASE64.test(value)) {
    throw new ApiError(400, 'invalid_base64', `field '${field}' is not valid base64`)
  }
  return Buffer.from(value, 'base64')
}

export function optionalBase64Field(
  body: Record<string, unknown>,
  field: string,
): Buffer | undefined {
  return body[field] === undefined ? undefined : base64Field(body, field)
}

/** Reads an optional string field that must be one of `allowed`; the error lists them. */
export function enumField<T extends string>(
  body: Record<string, unknown>,
  field: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = body[field]
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ApiError(
      400,
      'invalid_algorithm',
      `field '${field}' is ${JSON.stringify(value)}; allowed: ${allowed.join(', ')}`,
    )
  }
  return value as T
}

/** Rejects fields that the operation does not know, so a typo is not silently ignored. */
export function rejectUnknownFields(body: Record<string, unknown>, known: readonly string[]): void {
  const unknown = Object.keys(body).filter((field) => !known.includes(field))
  if (unknown.length > 0) {
    throw invalidRequest(`unknown field '${unknown[0]}'; allowed fields: ${known.join(', ')}`)
  }
}
