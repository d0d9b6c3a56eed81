import type {
  Application,
  AuditCheckpoint,
  AuditRecord,
  EnrollmentToken,
  IssuedCertificate,
  KeyVersion,
} from '../store.js'

// Row shapes as the pool's type parsers return them: timestamptz as ISO strings, bigint as
// numbers, jsonb as parsed values.

export interface KeyRow {
  name: string
  version: number
  type: KeyVersion['type']
  cka_id: string
  label: string
  state: KeyVersion['state']
  owner: string
  tags: string[]
  classification: KeyVersion['classification']
  created_at: string
}

export interface ApplicationRow {
  name: string
  team: string
  hosts: string[]
  addresses: string[]
  suspended: boolean
  created_at: string
}

export interface CertificateRow {
  serial: string
  app: string
  host: string
  addresses: string[]
  not_before: string
  not_after: string
  key_protection: IssuedCertificate['keyProtection']
  status: IssuedCertificate['status']
  revoked_at: string | null
  revocation_reason: string | null
  issued_at: string
}

export interface TokenRow {
  token_hash: string
  app: string
  host: string
  addresses: string[]
  expires_at: string
  created_at: string
  used_at: string | null
}

export interface AuditRow {
  node: string
  seq: number
  time: string
  principal: string
  cert_serial: string | null
  source_address: string | null
  decision_id: string
  operation: string
  key_name: string | null
  key_version: number | null
  outcome: AuditRecord['outcome']
  status: number
  error_code: string | null
  policy_ids: string
  reason: string | null
  request_digest: string
  latency_ms: number
  prev_hash: string
  hash: string
}

export interface CheckpointRow {
  writer: string
  seq: number
  head_hash: string
  time: string
  signer: string
  key_id: string
  public_key: string
  signature: string
}

export function toKeyVersion(row: KeyRow): KeyVersion {
  return {
    name: row.name,
    version: row.version,
    type: row.type,
    ckaId: row.cka_id,
    label: row.label,
    state: row.state,
    owner: row.owner,
    tags: row.tags,
    classification: row.classification,
    createdAt: row.created_at,
  }
}

export function toApplication(row: ApplicationRow): Application {
  return {
    name: row.name,
    team: row.team,
    hosts: row.hosts,
    addresses: row.addresses,
    suspended: row.suspended,
    createdAt: row.created_at,
  }
}

export function toCertificate(row: CertificateRow): IssuedCertificate {
  return {
    serial: row.serial,
    app: row.app,
    host: row.host,
    addresses: row.addresses,
    notBefore: row.not_before,
    notAfter: row.not_after,
    keyProtection: row.key_protection,
    status: row.status,
    revokedAt: row.revoked_at,
    revocationReason: row.revocation_reason,
    issuedAt: row.issued_at,
  }
}

export function toToken(row: TokenRow): EnrollmentToken {
  return {
    tokenHash: row.token_hash,
    app: row.app,
    host: row.host,
    addresses: row.addresses,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    usedAt: row.used_at,
  }
}

export function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    node: row.node,
    seq: row.seq,
    time: row.time,
    principal: row.principal,
    certSerial: row.cert_serial,
    sourceAddress: row.source_address,
    decisionId: row.decision_id,
    operation: row.operation,
    key: row.key_name,
    keyVersion: row.key_version,
    outcome: row.outcome,
    status: row.status,
    errorCode: row.error_code,
    policyIds: parsePolicyIds(row.policy_ids),
    reason: row.reason,
    requestDigest: row.request_digest,
    latencyMs: row.latency_ms,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}

export function toCheckpoint(row: CheckpointRow): AuditCheckpoint {
  return {
    writer: row.writer,
    seq: row.seq,
    headHash: row.head_hash,
    time: row.time,
    signer: row.signer,
    keyId: row.key_id,
    publicKey: row.public_key,
    signature: row.signature,
  }
}

/**
 * Parses the stored policy id list. A value that is not a JSON list of strings (an edited row)
 * comes back as a one-element list of the raw text, so the record's hash no longer matches and
 * verification names the record instead of the read failing.
 */
function parsePolicyIds(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text)
    if (Array.isArray(value) && value.every((id) => typeof id === 'string')) return value
  } catch {
    // Falls through to the raw text.
  }
  return [text]
}
