// The decision header proves to the crypto backend that ext_authz allowed this exact request. The
// backend imports this module to verify it, so it must not import gRPC or other authz code.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'

/** Version tag at the start of every decision header value. */
export const DECISION_VERSION = 'v2'

/** Minimum length of the HMAC key in bytes, equal to the SHA-256 output size. */
export const MIN_SECRET_BYTES = 32

/** Maximum secret file size in bytes, so that a wrong path cannot make the process read a huge file. */
const MAX_SECRET_BYTES = 64 * 1024

/**
 * How far issuedAt may lie ahead of the verifier's clock. Signer and verifier run on the same
 * node, so only small differences between clock reads are expected.
 */
export const MAX_CLOCK_SKEW_MS = 1_000

/** Maximum header value length, checked before any parsing. */
const MAX_HEADER_LENGTH = 512

const DECISION_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const ISSUED_AT_PATTERN = /^(0|[1-9][0-9]{0,15})$/
/** base64url of a 32-byte HMAC-SHA-256 tag, without padding. */
const MAC_PATTERN = /^[A-Za-z0-9_-]{43}$/
const BODY_DIGEST_PATTERN = /^[0-9a-f]{64}$/
/** Lowercase hex certificate serial as normalizeSerial() returns it; empty when there is none. */
const CERT_SERIAL_PATTERN = /^[0-9a-f]{0,64}$/
/** base64url of a source address of up to 64 characters, without padding. */
const SOURCE_ADDRESS_PATTERN = /^[A-Za-z0-9_-]{0,86}$/
/** Maximum source address length in characters, as authz records it. */
export const MAX_SOURCE_ADDRESS_LENGTH = 64

/** A decision secret file that is missing, too short, or readable by other users. */
export class DecisionSecretError extends Error {
  readonly code = 'decision_secret_invalid'

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DecisionSecretError'
  }
}

/** The request facts that a decision header is bound to. */
export interface DecisionClaims {
  /** Random identifier of the decision, also logged by ext_authz. */
  readonly decisionId: string
  /** SPIFFE ID of the client. */
  readonly principal: string
  /** HTTP method, such as POST. */
  readonly method: string
  /** Request target as Envoy forwards it: path plus query string, not decoded. */
  readonly path: string
  /** Hex SHA-256 of the raw request body, from bodyDigest(). */
  readonly bodyDigest: string
  /** Milliseconds since the Unix epoch when ext_authz made the decision. */
  readonly issuedAtMs: number
  /** Serial of the client certificate in lowercase hex; absent or empty when there is none. */
  readonly certSerial?: string
  /** Client address that authz decided on (at most 64 characters); absent when unknown. */
  readonly sourceAddress?: string
}

/** The request as the backend received it, to compare against a decision header. */
export interface DecisionRequest {
  readonly principal: string
  readonly method: string
  readonly path: string
  readonly body: Uint8Array
}

/** A verified decision with the facts that authz bound into it. */
export interface VerifiedDecision {
  ok: true
  decisionId: string
  /** The certificate serial authz saw, or null when the request had none (enrollment). */
  certSerial: string | null
  /** The client address authz decided on, or null when it was unknown. */
  sourceAddress: string | null
}

export type DecisionVerification = VerifiedDecision | { ok: false; reason: string }

/**
 * Reads the HMAC key shared by ext_authz and the crypto backend. The file must be a regular file
 * of at least 32 bytes without any group or other permission bits. All bytes are the key, so a
 * trailing newline is part of it.
 */
export function loadDecisionSecret(path: string): Buffer {
  let stats
  try {
    stats = statSync(path)
  } catch (error) {
    throw new DecisionSecretError(`decision secret ${path} cannot be read: ${errorText(error)}`, {
      cause: error,
    })
  }
  if (!stats.isFile()) {
    throw new DecisionSecretError(`decision secret ${path} is not a regular file`)
  }
  if ((stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(3, '0')
    throw new DecisionSecretError(
      `decision secret ${path} has mode ${mode} and is accessible to group or other users; ` +
        `run 'chmod 600 ${path}'`,
    )
  }
  if (stats.size > MAX_SECRET_BYTES) {
    throw new DecisionSecretError(
      `decision secret ${path} is ${stats.size} bytes; the maximum is ${MAX_SECRET_BYTES}`,
    )
  }

  let secret: Buffer
  try {
    secret = readFileSync(path)
  } catch (error) {
    throw new DecisionSecretError(`decision secret ${path} cannot be read: ${errorText(error)}`, {
      cause: error,
    })
  }
  if (secret.length < MIN_SECRET_BYTES) {
    throw new DecisionSecretError(
      `decision secret ${path} is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are required`,
    )
  }
  return secret
}

/** Returns the hex SHA-256 digest of a request body. An absent body is the empty byte string. */
export function bodyDigest(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex')
}

/**
 * Signs a decision and returns the header value
 * `v2.<issuedAtMs>.<decisionId>.<certSerial>.<sourceAddress>.<mac>`, where the source address is
 * unpadded base64url and mac is the unpadded base64url HMAC-SHA-256 over macInput(). Throws
 * TypeError on claims that the format cannot carry (a decision id outside [A-Za-z0-9_-], a
 * non-integer time, a bad digest, a serial that is not lowercase hex, an address over 64
 * characters).
 */
export function signDecision(secret: Buffer, claims: DecisionClaims): string {
  checkSecret(secret)
  if (!DECISION_ID_PATTERN.test(claims.decisionId)) {
    throw new TypeError('decisionId must be 1 to 64 characters of [A-Za-z0-9_-]')
  }
  if (!Number.isSafeInteger(claims.issuedAtMs) || claims.issuedAtMs < 0) {
    throw new TypeError('issuedAtMs must be a non-negative safe integer')
  }
  if (!BODY_DIGEST_PATTERN.test(claims.bodyDigest)) {
    throw new TypeError('bodyDigest must be a lowercase hex SHA-256 digest')
  }
  const certSerial = claims.certSerial ?? ''
  if (!CERT_SERIAL_PATTERN.test(certSerial)) {
    throw new TypeError('certSerial must be at most 64 lowercase hex digits')
  }
  const sourceAddress = claims.sourceAddress ?? ''
  if (sourceAddress.length > MAX_SOURCE_ADDRESS_LENGTH) {
    throw new TypeError(`sourceAddress must be at most ${MAX_SOURCE_ADDRESS_LENGTH} characters`)
  }
  const issuedAt = String(claims.issuedAtMs)
  const mac = computeMac(secret, issuedAt, { ...claims, certSerial, sourceAddress })
  const address = Buffer.from(sourceAddress, 'utf8').toString('base64url')
  const parts = [DECISION_VERSION, issuedAt, claims.decisionId, certSerial, address]
  return `${parts.join('.')}.${mac.toString('base64url')}`
}

/**
 * Verifies a decision header against the request the backend received. The MAC is compared in
 * constant time before the timestamp is trusted. A decision is rejected when it is older than
 * maxAgeMs or more than MAX_CLOCK_SKEW_MS in the future.
 *
 * NOTE: a valid header can be replayed for an identical request (same principal, method, path and
 * body) until it is maxAgeMs old. A verifier that must reject replays has to remember decision ids.
 */
export function verifyDecision(
  secret: Buffer,
  header: string | undefined,
  request: DecisionRequest,
  nowMs: number,
  maxAgeMs: number,
): DecisionVerification {
  checkSecret(secret)
  if (header === undefined || header.length === 0) {
    return { ok: false, reason: 'decision header is missing' }
  }
  if (header.length > MAX_HEADER_LENGTH) {
    return { ok: false, reason: `decision header is longer than ${MAX_HEADER_LENGTH} characters` }
  }

  const parts = header.split('.')
  if (parts.length !== 6) {
    return { ok: false, reason: 'decision header does not have 6 dot-separated parts' }
  }
  const [version, issuedAt, decisionId, certSerial, address, mac] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
  ]
  if (version !== DECISION_VERSION) {
    return { ok: false, reason: 'decision header has an unsupported version' }
  }
  if (!ISSUED_AT_PATTERN.test(issuedAt)) {
    return { ok: false, reason: 'decision header has an invalid issuedAt' }
  }
  if (!DECISION_ID_PATTERN.test(decisionId)) {
    return { ok: false, reason: 'decision header has an invalid decision id' }
  }
  if (!CERT_SERIAL_PATTERN.test(certSerial)) {
    return { ok: false, reason: 'decision header has an invalid certificate serial' }
  }
  if (!SOURCE_ADDRESS_PATTERN.test(address)) {
    return { ok: false, reason: 'decision header has an invalid source address encoding' }
  }
  if (!MAC_PATTERN.test(mac)) {
    return { ok: false, reason: 'decision header has an invalid MAC encoding' }
  }

  const sourceAddress = Buffer.from(address, 'base64url').toString('utf8')
  const expected = computeMac(secret, issuedAt, {
    decisionId,
    certSerial,
    sourceAddress,
    principal: request.principal,
    method: request.method,
    path: request.path,
    bodyDigest: bodyDigest(request.body),
  })
  const presented = Buffer.from(mac, 'base64url')
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    return { ok: false, reason: 'decision MAC does not match the request' }
  }

  const issuedAtMs = Number(issuedAt)
  if (issuedAtMs - nowMs > MAX_CLOCK_SKEW_MS) {
    return { ok: false, reason: 'decision is issued in the future' }
  }
  if (nowMs - issuedAtMs > maxAgeMs) {
    return { ok: false, reason: `decision is older than ${maxAgeMs} ms` }
  }
  return {
    ok: true,
    decisionId,
    certSerial: certSerial === '' ? null : certSerial,
    sourceAddress: sourceAddress === '' ? null : sourceAddress,
  }
}

/**
 * Builds the MAC input: a domain label followed by version, issuedAt, decisionId, principal,
 * method, path, bodyDigest, certSerial and sourceAddress, each as a 4-byte big-endian byte length
 * and its UTF-8 bytes. The length prefixes keep field boundaries unambiguous whatever the fields
 * contain. An absent serial or address is the empty string.
 */
export function macInput(issuedAt: string, claims: Omit<DecisionClaims, 'issuedAtMs'>): Buffer {
  const fields = [
    'hsmgate-decision',
    DECISION_VERSION,
    issuedAt,
    claims.decisionId,
    claims.principal,
    claims.method,
    claims.path,
    claims.bodyDigest,
    claims.certSerial ?? '',
    claims.sourceAddress ?? '',
  ]
  const chunks: Buffer[] = []
  for (const field of fields) {
    const bytes = Buffer.from(field, 'utf8')
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    chunks.push(length, bytes)
  }
  return Buffer.concat(chunks)
}

function computeMac(
  secret: Buffer,
  issuedAt: string,
  claims: Omit<DecisionClaims, 'issuedAtMs'>,
): Buffer {
  return createHmac('sha256', secret).update(macInput(issuedAt, claims)).digest()
}

function checkSecret(secret: Buffer): void {
  if (secret.length < MIN_SECRET_BYTES) {
    throw new TypeError(`decision secret must be at least ${MIN_SECRET_BYTES} bytes`)
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
