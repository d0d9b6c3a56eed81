import { X509Certificate } from 'node:crypto'
import { normalizeSerial } from '../store/certificate-serial.js'
import { keyProtectionOf, type KeyProtection } from './key-protection.js'

/** The client identity taken from the peer certificate that Envoy verified. */
export interface PeerIdentity {
  /** The SPIFFE ID from the certificate's single URI SAN. */
  readonly principal: string
  readonly trustDomain: string
  /**
   * Serial number in lowercase hex without leading zero bytes (normalizeSerial), the form that
   * the audit, the certificates table, the CRL and `hsmgate certs revoke` use.
   */
  readonly serialNumber: string
  /** Issuer distinguished name, one attribute per line. */
  readonly issuer: string
  readonly subject: string
  readonly notBefore: Date
  readonly notAfter: Date
  /** SHA-256 fingerprint as colon-separated hex. */
  readonly fingerprint256: string
  /** IP address SANs, as node:crypto prints them. */
  readonly ipAddresses: readonly string[]
  /** DNS name SANs; an issued client certificate names its host here. */
  readonly dnsNames: readonly string[]
  /** Where the client's private key lives, from the key-protection extension. */
  readonly keyProtection: KeyProtection
}

export type IdentityErrorCode =
  | 'certificate_missing'
  | 'certificate_invalid'
  | 'certificate_expired'
  | 'uri_san_missing'
  | 'uri_san_multiple'
  | 'spiffe_id_invalid'
  | 'trust_domain_mismatch'

/**
 * A peer certificate that does not yield one SPIFFE ID in the trust domain. The message contains
 * details for the log, so it must not be sent to clients.
 */
export class IdentityError extends Error {
  constructor(
    readonly code: IdentityErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'IdentityError'
  }
}

/** Maximum length of the encoded certificate. Client leaf certificates are typically under 4 KiB. */
const MAX_ENCODED_CERTIFICATE_LENGTH = 64 * 1024

/** Upper bound on SAN entries parsed from one certificate. */
const MAX_SAN_ENTRIES = 256

/**
 * SPIFFE ID syntax: spiffe://<trust domain>/<path> where the trust domain is lowercase letters,
 * digits, dots, hyphens and underscores, and each path segment is non-empty [A-Za-z0-9._-].
 */
const SPIFFE_ID_PATTERN = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)+)$/

/**
 * Extracts the client identity from `attributes.source.certificate`, which Envoy fills with the
 * URL-encoded PEM leaf certificate when include_peer_certificate is set. The principal is the
 * certificate's only URI SAN, a SPIFFE ID in `trustDomain`. Envoy has already verified the chain.
 * This function also rejects a certificate outside its validity period at `nowMs`, because a TLS
 * connection can outlive the certificate it was opened with. Throws IdentityError.
 */
export function identityFromCertificate(
  encoded: string,
  trustDomain: string,
  nowMs: number = Date.now(),
): PeerIdentity {
  const cacheKey = `${trustDomain} ${encoded}`
  const cached = identityCache.get(cacheKey)
  if (cached === undefined) {
    const identity = parseIdentity(encoded, trustDomain, nowMs)
    if (identityCache.size >= IDENTITY_CACHE_LIMIT) identityCache.clear()
    identityCache.set(cacheKey, identity)
    return identity
  }
  checkValidity(cached, nowMs)
  return cached
}

/**
 * Parsed identities by trust domain and encoded certificate. Parsing costs more than the rest of
 * a decision, and a client sends the same certificate on every request. Only successful parses
 * are kept, and the validity period is checked again on every use.
 */
const identityCache = new Map<string, PeerIdentity>()
const IDENTITY_CACHE_LIMIT = 1024

function checkValidity(
  identity: Pick<PeerIdentity, 'serialNumber' | 'notBefore' | 'notAfter'>,
  nowMs: number,
): void {
  if (!(nowMs >= identity.notBefore.getTime() && nowMs <= identity.notAfter.getTime())) {
    throw new IdentityError(
      'certificate_expired',
      `peer certificate ${identity.serialNumber} is valid from ` +
        `${identity.notBefore.toISOString()} to ${identity.notAfter.toISOString()}, not now`,
    )
  }
}

function parseIdentity(encoded: string, trustDomain: string, nowMs: number): PeerIdentity {
  if (encoded.length === 0) {
    throw new IdentityError('certificate_missing', 'no peer certificate in the check request')
  }
  if (encoded.length > MAX_ENCODED_CERTIFICATE_LENGTH) {
    throw new IdentityError(
      'certificate_invalid',
      `peer certificate is ${encoded.length} characters; the maximum is ${MAX_ENCODED_CERTIFICATE_LENGTH}`,
    )
  }

  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(decodeURIComponent(encoded))
  } catch (error) {
    throw new IdentityError(
      'certificate_invalid',
      `peer certificate cannot be parsed: ${(error as Error).message}`,
      { cause: error },
    )
  }

  const serialNumber = normalizeSerial(certificate.serialNumber)
  const notBefore = new Date(certificate.validFrom)
  const notAfter = new Date(certificate.validTo)
  checkValidity({ serialNumber, notBefore, notAfter }, nowMs)

  const sans = subjectAltNames(certificate.subjectAltName)
  const uris = sans.filter((san) => san.type === 'URI').map((san) => san.value)
  if (uris.length === 0) {
    throw new IdentityError(
      'uri_san_missing',
      `peer certificate ${serialNumber} has no URI subject alternative name`,
    )
  }
  if (uris.length > 1) {
    throw new IdentityError(
      'uri_san_multiple',
      `peer certificate ${serialNumber} has ${uris.length} URI subject alternative ` +
        `names; exactly one is required`,
    )
  }

  const principal = uris[0] as string
  const match = SPIFFE_ID_PATTERN.exec(principal)
  const segments = match?.[2]?.split('/').slice(1) ?? []
  if (match === null || segments.some((s) => s === '.' || s === '..')) {
    throw new IdentityError(
      'spiffe_id_invalid',
      `peer certificate URI SAN ${JSON.stringify(principal.slice(0, 300))} is not a SPIFFE ID`,
    )
  }
  if (match[1] !== trustDomain) {
    throw new IdentityError(
      'trust_domain_mismatch',
      `peer SPIFFE ID ${principal} is not in trust domain ${trustDomain}`,
    )
  }

  return {
    principal,
    trustDomain,
    serialNumber,
    issuer: certificate.issuer,
    subject: certificate.subject,
    notBefore,
    notAfter,
    fingerprint256: certificate.fingerprint256,
    ipAddresses: sans.filter((san) => san.type === 'IP Address').map((san) => san.value),
    dnsNames: sans.filter((san) => san.type === 'DNS').map((san) => san.value),
    keyProtection: keyProtectionOf(certificate.raw, certificate.fingerprint256),
  }
}

/**
 * Returns the URI entries of X509Certificate.subjectAltName. Node 20 prints entries as
 * `TYPE:value` joined by ", ", and prints a value as a JSON string literal when it contains
 * characters such as ',' that would make the list ambiguous. Throws IdentityError when the text
 * does not follow that format.
 */
export function uriSubjectAltNames(subjectAltName: string | undefined): string[] {
  return subjectAltNames(subjectAltName)
    .filter((san) => san.type === 'URI')
    .map((san) => san.value)
}

/** Returns every entry of X509Certificate.subjectAltName as type and value. */
export function subjectAltNames(
  subjectAltName: string | undefined,
): { type: string; value: string }[] {
  if (subjectAltName === undefined || subjectAltName.length === 0) {
    return []
  }
  const entries: { type: string; value: string }[] = []
  let position = 0
  for (let count = 0; position < subjectAltName.length; count++) {
    if (count >= MAX_SAN_ENTRIES) {
      throw new IdentityError('certificate_invalid', `more than ${MAX_SAN_ENTRIES} SAN entries`)
    }
    const colon = subjectAltName.indexOf(':', position)
    if (colon === -1) {
      throw malformedSan(subjectAltName)
    }
    const type = subjectAltName.slice(position, colon)
    let value: string
    let end: number
    if (subjectAltName[colon + 1] === '"') {
      end = endOfJsonString(subjectAltName, colon + 1)
      try {
        value = JSON.parse(subjectAltName.slice(colon + 1, end)) as string
      } catch {
        throw malformedSan(subjectAltName)
      }
    } else {
      const separator = subjectAltName.indexOf(', ', colon + 1)
      end = separator === -1 ? subjectAltName.length : separator
      value = subjectAltName.slice(colon + 1, end)
    }
    entries.push({ type, value })
    if (end === subjectAltName.length) {
      break
    }
    if (!subjectAltName.startsWith(', ', end)) {
      throw malformedSan(subjectAltName)
    }
    position = end + 2
  }
  return entries
}

/** Returns the index just past the closing quote of the JSON string that starts at `start`. */
function endOfJsonString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') {
      i++
    } else if (text[i] === '"') {
      return i + 1
    }
  }
  throw malformedSan(text)
}

function malformedSan(text: string): IdentityError {
  return new IdentityError(
    'certificate_invalid',
    `cannot parse subjectAltName ${JSON.stringify(text.slice(0, 300))}`,
  )
}
