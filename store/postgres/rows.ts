import type { Application, EnrollmentToken, IssuedCertificate, KeyVersion } from '../store.js'

export { toAuditRecord, toCheckpoint, type AuditRow, type CheckpointRow } from '../audit-rows.js'

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
