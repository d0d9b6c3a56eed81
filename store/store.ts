import type { TpmRecords } from './tpm-sqlite.js'

/** Key types the gateway can hold. */
export const KEY_TYPES = [
  'ec-p256',
  'ec-p384',
  'ed25519',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
  'aes-256',
  'aes-256-wrap',
  'hmac-sha256',
  'hmac-sha384',
] as const

export type KeyType = (typeof KEY_TYPES)[number]

/** State of one key version's lifecycle; a destroyed version has no key material left. */
export type KeyState = 'enabled' | 'disabled' | 'destroyed'

/** Sensitivity level of a key's data. Policies may demand more of callers for higher levels. */
export type Classification = 'public' | 'internal' | 'confidential' | 'restricted'

/** Metadata of one key version; the key material stays in the HSM under `ckaId`. */
export interface KeyVersion {
  name: string
  version: number
  type: KeyType
  ckaId: string
  label: string
  state: KeyState
  owner: string
  tags: string[]
  classification: Classification
  createdAt: string
}

/** An application that may call the gateway, identified by its SPIFFE-style principal. */
export interface Application {
  name: string
  team: string
  /** DNS names of the hosts the application runs on. */
  hosts: string[]
  /** IP addresses of those hosts. */
  addresses: string[]
  suspended: boolean
  createdAt: string
}

/** Protection of a client certificate's private key, as recorded at issuance. */
export type KeyProtection = 'software' | 'tpm'

/** A client certificate the gateway issued. */
export interface IssuedCertificate {
  /** The serial number in lowercase hex, as `openssl x509 -serial` prints it but lowercase. */
  serial: string
  app: string
  host: string
  addresses: string[]
  notBefore: string
  notAfter: string
  keyProtection: KeyProtection
  status: 'active' | 'revoked'
  revokedAt: string | null
  revocationReason: string | null
  issuedAt: string
}

/** A single-use enrollment token; only the SHA-256 of the token text is stored. */
export interface EnrollmentToken {
  tokenHash: string
  app: string
  host: string
  addresses: string[]
  expiresAt: string
  createdAt: string
  usedAt: string | null
}

/** The result of redeeming an enrollment token. */
export type TokenRedemption =
  { ok: true; token: EnrollmentToken } | { ok: false; reason: 'unknown' | 'used' | 'expired' }

/** Whether a certificate serial is the newest seen for its application and host. */
export type SerialSighting = 'newest' | 'older'

/** One audited operation, written before the caller receives its result. */
export interface AuditEntry {
  time: string
  node: string
  principal: string
  certSerial: string | null
  sourceAddress: string | null
  decisionId: string
  operation: string
  key: string | null
  keyVersion: number | null
  outcome: 'ok' | 'error'
  status: number
  errorCode: string | null
  /** Ids of the policies that determined the decision. */
  policyIds: string[]
  reason: string | null
  requestDigest: string
  latencyMs: number
}

/** An audit entry as stored, with its place in the node's hash chain. */
export interface AuditRecord extends AuditEntry {
  seq: number
  prevHash: string
  hash: string
}

/**
 * A signed statement that a writer's chain had the record `seq` with hash `headHash`, made by a
 * crypto backend with its HSM-resident audit key.
 */
export interface AuditCheckpoint {
  writer: string
  seq: number
  headHash: string
  time: string
  /** Node id of the backend that signed the checkpoint. */
  signer: string
  /** CKA_ID of the audit key in lowercase hex. */
  keyId: string
  /** The audit public key as SubjectPublicKeyInfo PEM. */
  publicKey: string
  /** ECDSA P-256 with SHA-256 over the checkpoint's signed text, DER in base64. */
  signature: string
}

/** The newest record of one writer's chain. */
export interface AuditHead {
  writer: string
  seq: number
  hash: string
}

/**
 * The state store behind the gateway. Implementations must make `appendAudit` durable before
 * it returns, because the backend responds only after the record is written.
 */
export interface Store {
  putKeyVersion(key: KeyVersion): void
  /** Returns every version of a key, newest first, or an empty list for an unknown name. */
  keyVersions(name: string): KeyVersion[]
  /** Returns the newest version of every key, ordered by name. */
  listKeys(): KeyVersion[]
  putApplication(app: Application): void
  /** Returns the application, or undefined for an unknown name. */
  application(name: string): Application | undefined
  listApplications(): Application[]
  appendAudit(entry: AuditEntry): AuditRecord
  /** Appends several entries in one durable transaction, in order; all or none are written. */
  appendAuditBatch(entries: AuditEntry[]): AuditRecord[]
  auditRecords(node: string): AuditRecord[]
  /** Returns up to `limit` records of a writer with seq greater than `afterSeq`, in order. */
  auditRecordsAfter(writer: string, afterSeq: number, limit: number): AuditRecord[]
  /** Returns the newest record of every writer, ordered by writer. */
  auditHeads(): AuditHead[]
  /** Stores a checkpoint; storing the same writer, seq and signer again changes nothing. */
  putAuditCheckpoint(checkpoint: AuditCheckpoint): void
  /** Returns every checkpoint of a writer, ordered by seq and signer. */
  auditCheckpoints(writer: string): AuditCheckpoint[]
  /** Returns the writers that have records or checkpoints, ordered by name. */
  auditWriters(): string[]

  putCertificate(certificate: IssuedCertificate): void
  /** Returns the certificate with this serial (lowercase hex), or undefined. */
  certificate(serial: string): IssuedCertificate | undefined
  certificatesOf(app: string): IssuedCertificate[]
  /** Marks a certificate revoked; returns false when the serial is unknown or already revoked. */
  revokeCertificate(serial: string, reason: string, at: string): boolean
  /** Returns every revoked certificate that has not expired at `now`, for the CRL. */
  revokedCertificates(now: string): IssuedCertificate[]

  putEnrollmentToken(token: EnrollmentToken): void
  /**
   * Marks the token with this hash used, atomically, so that two concurrent redemptions cannot
   * both succeed. Fails for an unknown, used or expired token.
   */
  redeemEnrollmentToken(tokenHash: string, now: string): TokenRedemption
  /** Returns the token with this hash without redeeming it, or undefined. */
  enrollmentToken(tokenHash: string): EnrollmentToken | undefined

  /**
   * Records that a certificate was used. Returns 'older' when a certificate of the same
   * application and host with a later notBefore was seen before, which means an old key is
   * still in use: a copy.
   */
  recordSerialSeen(app: string, host: string, serial: string, notBefore: string): SerialSighting
  /** TPM attestation nonces and the attestation keys registered for hosts. */
  readonly tpm: TpmRecords
  close(): void
}
