import type { AuditCheckpoint, AuditRecord } from './store.js'

// Row shapes and conversions of the audit tables, the same in SQLite and PostgreSQL.

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

/** Converts an audit table row to the record the store interface returns. */
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

/** Converts a checkpoint table row to the checkpoint the store interface returns. */
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
