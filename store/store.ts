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

/** State of an approval request. A granted request becomes `used` when its last use is taken. */
export type ApprovalStatus = 'pending' | 'granted' | 'denied' | 'used'

/** One approver's vote on an approval request. */
export interface ApprovalVote {
  approver: string
  vote: 'approve' | 'deny'
  at: string
}

/**
 * A request for M of N approvals. The grant it becomes is bound to the requester, operation,
 * key and the SHA-256 of the request body, may be used `uses` times, and expires.
 */
export interface Approval {
  id: string
  /** SPIFFE ID of the principal that will make the approved request. */
  requester: string
  operation: string
  key: string | null
  /** Hex SHA-256 of the exact request body the grant allows. */
  paramsDigest: string
  /** For a quota extension: the quota's name and the extra requests per window. */
  quota: string | null
  extra: number
  group: string
  required: number
  uses: number
  usesLeft: number
  status: ApprovalStatus
  createdAt: string
  expiresAt: string
  /** Votes in the order they were cast. */
  votes: ApprovalVote[]
}

/** Facts a grant must match to be used. */
export interface GrantMatch {
  requester: string
  operation: string
  key: string | null
  paramsDigest: string
}

/** A cap on the pending approval requests of one requester, checked when one is stored. */
export interface PendingLimit {
  readonly maxPending: number
  /** Requests that expire at or before this time do not count. */
  readonly now: string
}

/** Which approval requests a caller may list: its own, and those of its approver groups. */
export interface ApprovalQuery {
  readonly requester: string
  readonly groups: readonly string[]
  readonly now: string
  readonly limit: number
  readonly offset?: number
}

/** An application that needs an approval for each further request, set by an anomaly rule. */
export interface ApprovalHold {
  app: string
  rule: string
  group: string
  required: number
  createdAt: string
}

/**
 * Dual control and anomaly state: approval requests with their votes, approval holds and the
 * first use of each value per application. Every gateway node reads and writes the same
 * records, so the methods marked atomic must stay correct when callers in other processes run
 * them at the same time.
 */
export interface ControlRecords {
  /**
   * Stores a new approval request without votes. Fails when the id exists. With `limit`, stores
   * it only while its requester has fewer than `limit.maxPending` pending requests unexpired at
   * `limit.now`, atomically: the count and the insert are serialized per requester, so
   * concurrent callers in several processes cannot together exceed the limit. Returns false,
   * and writes nothing, when the limit is reached.
   */
  createApproval(approval: Omit<Approval, 'votes'>, limit?: PendingLimit): Promise<boolean>
  /** Returns the approval request with its votes, or undefined for an unknown id. */
  approval(id: string): Promise<Approval | undefined>
  /**
   * Returns the approval requests that `query.requester` filed or that name one of
   * `query.groups`: pending ones unexpired at `query.now` first, then the rest, each part newest
   * first (ties by id). Skips `query.offset` (default 0) and returns at most `query.limit`.
   */
  listApprovals(query: ApprovalQuery): Promise<Approval[]>
  /**
   * Records a vote, atomically. The implementation locks the request, reads it with its current
   * votes and calls the synchronous `check` inside the same transaction. When `check` returns
   * an error code, the vote is rejected and nothing is written. A deny vote sets status
   * `denied`, and the approve vote that brings the approvals to `required` sets `granted`.
   * Concurrent votes on one request run one after the other, so each `check` sees the other's
   * vote: an approver cannot vote twice, and a denied request takes no more votes. Returns the
   * updated request, `{ error: 'approval_not_found' }` for an unknown id, or the error code of
   * `check`.
   */
  vote(
    id: string,
    vote: ApprovalVote,
    check: (approval: Approval) => string | undefined,
  ): Promise<Approval | { error: string }>
  /**
   * Takes one use of a granted, unexpired (`expiresAt` > `now`) approval that matches exactly
   * (`key` null matches only null), atomically: of concurrent callers racing for the last use,
   * exactly one gets it. Picks the match that expires first. Decrements `usesLeft` and sets
   * status `used` at zero. Returns the approval as it was before the use, or undefined when
   * none matches.
   */
  useGrant(match: GrantMatch, now: string): Promise<Approval | undefined>
  /** Returns the grant `useGrant` would take, without taking it. Needs no atomicity. */
  peekGrant(match: GrantMatch, now: string): Promise<Approval | undefined>
  /**
   * Returns the sum of `extra` over granted, unexpired approvals with operation
   * 'quota-extension' for this requester and quota, or 0.
   */
  quotaExtension(requester: string, quota: string, now: string): Promise<number>
  /**
   * Records that an application used `value` of `kind`, atomically: returns true for exactly
   * one caller per (app, kind, value), even when several processes record it at once.
   */
  recordFirstUse(app: string, kind: string, value: string, at: string): Promise<boolean>
  /** Sets a hold, atomically insert-if-absent: an existing hold of the application is kept. */
  putHold(hold: ApprovalHold): Promise<void>
  /** Returns the hold of an application, or undefined. */
  hold(app: string): Promise<ApprovalHold | undefined>
  /** Removes the hold of an application; returns false when it had none or was removed first. */
  clearHold(app: string): Promise<boolean>
}

/** An attestation key that an operator registered for one host with `hsmgate tpm register-ak`. */
export interface AttestationKey {
  /** TPM name of the key (nameAlg and digest of its TPMT_PUBLIC), lowercase hex. */
  name: string
  host: string
  /** The marshalled TPMT_PUBLIC, base64. */
  publicArea: string
  registeredAt: string
}

/** The result of redeeming a TPM attestation nonce. */
export type NonceRedemption = { ok: true } | { ok: false; reason: 'unknown' | 'used' | 'expired' }

/** Limits on unexpired, unused nonces, checked in the transaction that stores a new one. */
export interface NonceLimits {
  /** Maximum for the nonce's own source. */
  readonly perSource: number
  /** Maximum over all sources that start with `prefix`, such as every client address. */
  readonly perPrefix?: { readonly prefix: string; readonly max: number }
}

/** The result of storing a nonce: stored, or rejected by one of the limits. */
export type NoncePut = { ok: true } | { ok: false; reason: 'source_limit' | 'total_limit' }

/** A credential activation challenge of the EK certificate trust path. */
export interface ActivationChallenge {
  id: string
  /** Hex SHA-256 of the secret that MakeCredential protected. */
  secretHash: string
  /** Hex TPM name of the attestation key the challenge was made for. */
  akName: string
  /** Hex SHA-256 of the attestation nonce of the request that received the challenge. */
  nonceHash: string
  /** Hex SHA-256 of the EK certificate's DER. */
  ekFingerprint: string
  issuedAt: string
  expiresAt: string
}

/** The result of taking a challenge: its row, or why it cannot be answered. */
export type ChallengeRedemption =
  | { ok: true; challenge: ActivationChallenge }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' }

/**
 * TPM attestation state: registered attestation keys, the single-use nonces that enrollment
 * and renewal put into TPM2_Certify (only their SHA-256 is stored), and credential activation
 * challenges.
 */
export interface TpmRecords {
  /**
   * Stores a new nonce from `source` unless that would exceed `limits`, atomically: the count
   * of unused, unexpired nonces (own source, and all sources with the prefix) and the insert
   * are serialized against every other `putNonce`, so concurrent callers in several processes
   * cannot together exceed a limit. In the same transaction it deletes unused nonces expired at
   * `issuedAt` and any nonce that expired more than a day before `issuedAt`, so a replay within
   * a day reports 'used' rather than 'unknown'.
   */
  putNonce(
    nonceHash: string,
    issuedAt: string,
    expiresAt: string,
    source: string,
    limits: NonceLimits,
  ): Promise<NoncePut>
  /** Returns the number of stored nonce rows, used and expired ones included. */
  nonceCount(): Promise<number>
  /**
   * Marks a nonce used, atomically: of concurrent redemptions of one nonce exactly one gets
   * `ok`. Fails with 'unknown', 'used' or 'expired' (`expiresAt` <= `now`) and then changes
   * nothing.
   */
  redeemNonce(nonceHash: string, now: string): Promise<NonceRedemption>
  /** Stores an activation challenge and deletes challenges expired for more than a day. */
  putChallenge(challenge: ActivationChallenge): Promise<void>
  /**
   * Marks a challenge used and returns it, atomically, so that each challenge gets exactly one
   * answer whether that answer is right or wrong. An expired challenge is also marked used and
   * reports 'expired'. Fails for an unknown or used one.
   */
  takeChallenge(id: string, now: string): Promise<ChallengeRedemption>
  /** Registers an attestation key, or moves an already registered one to `key.host` (upsert). */
  putAttestationKey(key: AttestationKey): Promise<void>
  /** Returns the registered key with this name, or undefined. */
  attestationKey(name: string): Promise<AttestationKey | undefined>
  /** Removes a registered key; returns false when the name is not registered. */
  removeAttestationKey(name: string): Promise<boolean>
}

/**
 * The state store behind the gateway, shared by every gateway node. Every method returns a
 * promise; a write is durable (committed, and for SQLite synced) when its promise resolves,
 * and a failed write rejects and leaves nothing half-written.
 *
 * Methods described as atomic must stay correct when callers in other processes, sharing the
 * same database, run them at the same time: each runs as one transaction that reads and
 * writes under a lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE, a
 * conditional UPDATE ... RETURNING, INSERT ... ON CONFLICT, or an advisory lock), never as a
 * read in one statement followed by a write in another without one.
 */
export interface Store {
  /**
   * Stores a key version. For an existing (name, version) it updates only state, tags and
   * classification.
   */
  putKeyVersion(key: KeyVersion): Promise<void>
  /**
   * Returns every version of a key, newest first, or an empty list for an unknown name. Runs on
   * every authorized request, so it should be a single indexed query.
   */
  keyVersions(name: string): Promise<KeyVersion[]>
  /** Returns the newest version of every key, ordered by name. */
  listKeys(): Promise<KeyVersion[]>
  /** Stores an application; for an existing name it updates everything except createdAt. */
  putApplication(app: Application): Promise<void>
  /**
   * Returns the application, or undefined for an unknown name. Runs on every authorized
   * request, so it should be a single indexed query.
   */
  application(name: string): Promise<Application | undefined>
  /** Returns every application, ordered by name. */
  listApplications(): Promise<Application[]>
  /**
   * Appends one entry to the chain of writer `entry.node` and resolves once it is durable,
   * because the backend responds only after the record is written. Same rules as
   * `appendAuditBatch`.
   */
  appendAudit(entry: AuditEntry): Promise<AuditRecord>
  /**
   * Appends several entries in one durable transaction, in order; all or none are written.
   * Each record gets seq = previous seq of its writer + 1 (1 for the first) and prevHash = the
   * previous record's hash (GENESIS_HASH for the first), with hash = chainHash(prevHash, seq,
   * entry). Atomic per writer: concurrent appends for the same writer, from any process, must
   * be serialized so that seq has no gap and no duplicate and the chain never forks (read the
   * head and insert under one lock; (node, seq) is unique). Entries of different writers in one
   * batch each continue their own chain.
   */
  appendAuditBatch(entries: AuditEntry[]): Promise<AuditRecord[]>
  /** Returns every record of a writer, ordered by seq. */
  auditRecords(node: string): Promise<AuditRecord[]>
  /** Returns up to `limit` records of a writer with seq greater than `afterSeq`, in order. */
  auditRecordsAfter(writer: string, afterSeq: number, limit: number): Promise<AuditRecord[]>
  /** Returns the newest record of every writer, ordered by writer. */
  auditHeads(): Promise<AuditHead[]>
  /**
   * Stores a checkpoint; storing the same writer, seq and signer again changes nothing, also
   * when two processes store it at once (insert-if-absent, no error).
   */
  putAuditCheckpoint(checkpoint: AuditCheckpoint): Promise<void>
  /** Returns every checkpoint of a writer, ordered by seq and signer. */
  auditCheckpoints(writer: string): Promise<AuditCheckpoint[]>
  /** Returns the writers that have records or checkpoints, ordered by name. */
  auditWriters(): Promise<string[]>

  /** Stores a new certificate. Fails when the serial exists. */
  putCertificate(certificate: IssuedCertificate): Promise<void>
  /**
   * Returns the certificate with this serial (lowercase hex), or undefined. Runs on every
   * request for the revocation check.
   */
  certificate(serial: string): Promise<IssuedCertificate | undefined>
  /** Returns the certificates of an application, ordered by notBefore and serial. */
  certificatesOf(app: string): Promise<IssuedCertificate[]>
  /**
   * Marks an active certificate revoked, atomically (one conditional update); returns false
   * when the serial is unknown or already revoked, so of concurrent revocations exactly one
   * returns true.
   */
  revokeCertificate(serial: string, reason: string, at: string): Promise<boolean>
  /** Returns every revoked certificate unexpired at `now`, for the CRL, by revokedAt, serial. */
  revokedCertificates(now: string): Promise<IssuedCertificate[]>

  /** Stores a new enrollment token. Fails when the hash exists. */
  putEnrollmentToken(token: EnrollmentToken): Promise<void>
  /**
   * Marks the token with this hash used, atomically, so that two concurrent redemptions, in
   * the same or different processes, cannot both succeed. Fails for an unknown, used or
   * expired (`expiresAt` <= `now`) token and then changes nothing. On success returns the
   * token with `usedAt` = `now`; callers must use that token, not one read before.
   */
  redeemEnrollmentToken(tokenHash: string, now: string): Promise<TokenRedemption>
  /**
   * Returns the token with this hash without redeeming it, or undefined. A token read here
   * may be redeemed by another caller a moment later; never act on it as if it were redeemed.
   */
  enrollmentToken(tokenHash: string): Promise<EnrollmentToken | undefined>

  /**
   * Records that a certificate was used, atomically per (app, host): the read of the newest
   * serial seen and its update run under one lock. Returns 'older' (and changes nothing) when
   * a different certificate of the same application and host with a later notBefore was seen
   * before, which means an old key is still in use: a copy. Otherwise stores this serial as
   * the newest and returns 'newest'. Runs on every request of a certificate-bound principal.
   */
  recordSerialSeen(
    app: string,
    host: string,
    serial: string,
    notBefore: string,
  ): Promise<SerialSighting>
  /** TPM attestation nonces, activation challenges and the attestation keys of hosts. */
  readonly tpm: TpmRecords
  /** Approval requests, approval holds and first uses, for dual control and anomaly rules. */
  readonly controls: ControlRecords
  /** Closes the connection or pool. No other method may be called afterwards. */
  close(): Promise<void>
}
