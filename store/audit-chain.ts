import { createHash } from 'node:crypto'
import type { AuditEntry } from './store.js'

/** The previous-hash value of the first record in a chain. */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * Computes a record's chain hash: SHA-256 over the previous hash and the entry's fields in a
 * fixed order, so that editing, removing or reordering a record changes every later hash.
 */
export function chainHash(prevHash: string, seq: number, entry: AuditEntry): string {
  const fields = [
    prevHash,
    seq,
    entry.time,
    entry.node,
    entry.principal,
    entry.certSerial,
    entry.sourceAddress,
    entry.decisionId,
    entry.operation,
    entry.key,
    entry.keyVersion,
    entry.outcome,
    entry.status,
    entry.errorCode,
    entry.policyIds,
    entry.reason,
    entry.requestDigest,
    entry.latencyMs,
  ]
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex')
}
