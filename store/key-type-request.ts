import { KEY_TYPES, type KeyType } from './store.js'

/** A create-key request whose type, size, curve or tags are invalid; the message names the fix. */
export class KeyTypeRequestError extends Error {
  readonly code = 'invalid_key_type_request'
}

const invalidRequest = (message: string): KeyTypeRequestError => new KeyTypeRequestError(message)

/** Key families that create accepts in `type`, with their size or curve choices. */
const FAMILIES: Record<
  string,
  { option?: 'size' | 'curve'; choices: Record<string, KeyType>; fallback?: string }
> = {
  ec: { option: 'curve', choices: { 'P-256': 'ec-p256', 'P-384': 'ec-p384' }, fallback: 'P-256' },
  rsa: {
    option: 'size',
    choices: { '2048': 'rsa-2048', '3072': 'rsa-3072', '4096': 'rsa-4096' },
    fallback: '3072',
  },
  ed25519: { choices: { '': 'ed25519' } },
  aes: { option: 'size', choices: { '256': 'aes-256' }, fallback: '256' },
  'aes-wrap': { option: 'size', choices: { '256': 'aes-256-wrap' }, fallback: '256' },
  hmac: {
    option: 'size',
    choices: { '256': 'hmac-sha256', '384': 'hmac-sha384' },
    fallback: '256',
  },
}

/**
 * Reads the key type of a create request: `type` is a family (ec, rsa, ed25519, aes, aes-wrap,
 * hmac) with `curve` (EC) or `size` in bits (RSA, AES, HMAC), or a full type name such as
 * 'rsa-2048'. Every wrong value throws KeyTypeRequestError listing the allowed ones. authz and
 * the backend both call it, so policies judge the type that the backend stores.
 */
export function keyTypeOf(body: Record<string, unknown>): KeyType {
  const type = body.type
  if (typeof type === 'string' && (KEY_TYPES as readonly string[]).includes(type)) {
    if (body.size !== undefined || body.curve !== undefined) {
      throw invalidRequest(
        `type '${type}' already fixes the size or curve; omit 'size' and 'curve'`,
      )
    }
    return type as KeyType
  }
  const family = typeof type === 'string' ? FAMILIES[type] : undefined
  if (family === undefined) {
    throw invalidRequest(
      `field 'type' is ${JSON.stringify(type)}; allowed: ${Object.keys(FAMILIES).join(', ')} ` +
        `or one of ${KEY_TYPES.join(', ')}`,
    )
  }
  const other = family.option === 'size' ? 'curve' : 'size'
  if (body[other] !== undefined || (family.option === undefined && body.size !== undefined)) {
    throw invalidRequest(
      `field '${family.option === undefined ? 'size' : other}' does not apply to type '${type}'`,
    )
  }
  if (family.option === undefined) return family.choices[''] as KeyType
  const raw = body[family.option] ?? family.fallback
  const chosen = family.choices[String(raw)]
  if (chosen === undefined) {
    const unit = family.option === 'size' ? ' (bits)' : ''
    throw invalidRequest(
      `field '${family.option}' is ${JSON.stringify(raw)} for type '${type}'; allowed${unit}: ` +
        `${Object.keys(family.choices).join(', ')}`,
    )
  }
  return chosen
}

/** Reads optional `tags`: up to 16 strings of 1 to 64 characters. */
export function tagsOf(body: Record<string, unknown>): string[] {
  const tags = body.tags ?? []
  const valid =
    Array.isArray(tags) &&
    tags.length <= 16 &&
    tags.every((tag) => typeof tag === 'string' && tag.length > 0 && tag.length <= 64)
  if (!valid) {
    throw invalidRequest(
      "field 'tags' must be an array of at most 16 strings of 1 to 64 characters",
    )
  }
  return tags as string[]
}
