/** Key types the gateway can hold. */
export type KeyType = 'ec-p256' | 'aes-256'

/** State of one key version's lifecycle. */
export type KeyState = 'enabled' | 'disabled'

/** Metadata of one key version; the key material stays in the HSM under `ckaId`. */
export interface KeyVersion {
  name: string
  version: number
  type: KeyType
  ckaId: string
  label: string
  state: KeyState
  owner: string
  createdAt: string
}

/** One audited operation, written before the caller receives its result. */
export interface AuditEntry {
  time: string
  node: string
  principal: string
  decisionId: string
  operation: string
  key: string | null
  keyVersion: number | null
  outcome: 'ok' | 'error'
  status: number
  errorCode: string | null
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
 * The state store behind the gateway. Implementations must make `appendAudit` durable before
 * it returns, because the backend answers only after the record is written.
 */
export interface Store {
  putKeyVersion(key: KeyVersion): void
  /** Returns every version of a key, newest first, or an empty list for an unknown name. */
  keyVersions(name: string): KeyVersion[]
  /** Returns the newest version of every key, ordered by name. */
  listKeys(): KeyVersion[]
  appendAudit(entry: AuditEntry): AuditRecord
  auditRecords(node: string): AuditRecord[]
  close(): void
}
