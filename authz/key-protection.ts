import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

/**
 * OID of the hsmgate key-protection certificate extension. PLACEHOLDER: it lies under enterprise
 * number 32473, which RFC 5612 reserves for documentation, until hsmgate registers its own
 * private enterprise number. Change it here only, because every reader and writer imports it.
 * The extension value is a DER UTF8String, 'software' or 'tpm'.
 */
export const KEY_PROTECTION_OID = '1.3.6.1.4.1.32473.1.1'

export type KeyProtection = 'software' | 'tpm'

const VALUES: readonly KeyProtection[] = ['software', 'tpm']
const UTF8_STRING_TAG = 0x0c
const CACHE_LIMIT = 1024
const cache = new Map<string, KeyProtection>()

/**
 * Returns where the certificate says the client's private key lives. A missing, malformed or
 * unknown value counts as 'software', the weaker claim, so a policy that demands 'tpm' denies.
 * Results are cached by certificate fingerprint, because the extension never changes.
 */
export function keyProtectionOf(raw: Uint8Array, fingerprint: string): KeyProtection {
  const cached = cache.get(fingerprint)
  if (cached !== undefined) return cached
  const value = readExtension(raw)
  if (cache.size >= CACHE_LIMIT) cache.clear()
  cache.set(fingerprint, value)
  return value
}

function readExtension(raw: Uint8Array): KeyProtection {
  let extension: x509.Extension | null
  try {
    extension = new x509.X509Certificate(new Uint8Array(raw)).getExtension(KEY_PROTECTION_OID)
  } catch {
    return 'software'
  }
  if (extension === null) return 'software'
  const text = decodeUtf8String(new Uint8Array(extension.value))
  return VALUES.find((v) => v === text) ?? 'software'
}

/** Decodes a short DER UTF8String; returns undefined for anything else. */
export function decodeUtf8String(der: Uint8Array): string | undefined {
  if (der.length < 2 || der[0] !== UTF8_STRING_TAG) return undefined
  const length = der[1]!
  if (length > 127 || der.length !== length + 2) return undefined
  return Buffer.from(der.subarray(2)).toString('utf8')
}

/** Encodes a key-protection value as the extension's DER content, for issuers and tests. */
export function encodeKeyProtection(value: KeyProtection): Uint8Array {
  const bytes = Buffer.from(value, 'utf8')
  return Uint8Array.from([UTF8_STRING_TAG, bytes.length, ...bytes])
}
