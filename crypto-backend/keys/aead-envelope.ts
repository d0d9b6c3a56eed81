import { ApiError, invalidRequest } from '../api-error.js'

const MAGIC = Buffer.from('HG')
const FORMAT = 1
const IV_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = MAGIC.length + 1 + 4 + IV_BYTES

const MAX_CONTEXT_ENTRIES = 32
const MAX_CONTEXT_BYTES = 4096

/** An encryption context: string keys to string values, bound to a ciphertext as GCM AAD. */
export type EncryptionContext = Record<string, string>

/** The parts of an AES-GCM ciphertext as hsmgate serializes it. */
export interface AeadEnvelope {
  version: number
  iv: Buffer
  sealed: Buffer
}

/**
 * Serializes a ciphertext as `"HG" | format (1 byte) | key version (uint32 BE) | IV (12 bytes) |
 * ciphertext and tag`, so that a ciphertext names the key version that decrypts it.
 */
export function encodeEnvelope(envelope: AeadEnvelope): Buffer {
  const header = Buffer.alloc(HEADER_BYTES)
  MAGIC.copy(header, 0)
  header.writeUInt8(FORMAT, MAGIC.length)
  header.writeUInt32BE(envelope.version, MAGIC.length + 1)
  envelope.iv.copy(header, MAGIC.length + 5)
  return Buffer.concat([header, envelope.sealed])
}

/** Parses a ciphertext made by `encodeEnvelope`; anything else is a 400. */
export function decodeEnvelope(bytes: Buffer): AeadEnvelope {
  const malformed = (why: string): ApiError =>
    new ApiError(400, 'decrypt_failed', `ciphertext is not an hsmgate AES-GCM ciphertext: ${why}`)
  if (bytes.length < HEADER_BYTES + TAG_BYTES) throw malformed(`${bytes.length} bytes is too short`)
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw malformed('wrong magic bytes')
  if (bytes.readUInt8(MAGIC.length) !== FORMAT) throw malformed('unknown format version')
  return {
    version: bytes.readUInt32BE(MAGIC.length + 1),
    iv: bytes.subarray(MAGIC.length + 5, HEADER_BYTES),
    sealed: bytes.subarray(HEADER_BYTES),
  }
}

/**
 * Builds the GCM additional data from the key name, key version and the encryption context
 * with its keys sorted, so that decryption with another key, version or context fails.
 */
export function additionalData(
  keyName: string,
  version: number,
  context: EncryptionContext,
): Buffer {
  const sorted = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]])
  return Buffer.from(JSON.stringify(['hsmgate-aes-gcm-v1', keyName, version, sorted]), 'utf8')
}

/** Validates the optional `context` field of an encrypt or decrypt request. */
export function parseContext(value: unknown): EncryptionContext {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidRequest("field 'context' must be a JSON object of string values")
  }
  const entries = Object.entries(value)
  if (entries.length > MAX_CONTEXT_ENTRIES) {
    throw invalidRequest(
      `field 'context' has ${entries.length} entries; at most ${MAX_CONTEXT_ENTRIES}`,
    )
  }
  for (const [k, v] of entries) {
    if (typeof v !== 'string') {
      throw invalidRequest(`field 'context.${k}' must be a string, got ${typeof v}`)
    }
  }
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_CONTEXT_BYTES) {
    throw invalidRequest(`field 'context' is larger than ${MAX_CONTEXT_BYTES} bytes`)
  }
  return value as EncryptionContext
}

export const GCM_IV_BYTES = IV_BYTES
