import { ApiError } from '../api-error.js'

/** Two-byte tags of the blobs: RSA-OAEP ciphertexts and AES key wrap output. */
export type BlobMagic = 'HR' | 'HW'
const FORMAT = 1
const HEADER_BYTES = 2 + 1 + 4

/**
 * Serializes `magic | format (1 byte) | key version (uint32 BE) | body`, so that a ciphertext or
 * wrapped key names the key version that opens it.
 */
export function encodeVersioned(magic: BlobMagic, version: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES)
  header.write(magic, 0, 'ascii')
  header.writeUInt8(FORMAT, 2)
  header.writeUInt32BE(version, 3)
  return Buffer.concat([header, body])
}

/** Parses a blob made by `encodeVersioned`; anything else is a 400 naming `field`. */
export function decodeVersioned(
  magic: BlobMagic,
  bytes: Buffer,
  field: string,
): { version: number; body: Buffer } {
  const malformed = (why: string) =>
    new ApiError(400, 'decrypt_failed', `field '${field}' is not an hsmgate ${magic} blob: ${why}`)
  if (bytes.length <= HEADER_BYTES) throw malformed(`${bytes.length} bytes is too short`)
  if (bytes.subarray(0, 2).toString('ascii') !== magic) throw malformed('wrong magic bytes')
  if (bytes.readUInt8(2) !== FORMAT) throw malformed('unknown format version')
  const version = bytes.readUInt32BE(3)
  if (version === 0) throw malformed('key version 0 does not exist')
  return { version, body: bytes.subarray(HEADER_BYTES) }
}
