import { createHash } from 'node:crypto'
import { AuditBatcher } from '../store/audit-batcher.js'
import { normalizeSerial } from '../store/certificate-serial.js'
import type { AuditEntry, Store } from '../store/store.js'

/** The facts authz records about one decision. */
export interface DecisionRecord {
  readonly decisionId: string
  readonly principal: string | undefined
  readonly certSerial: string | undefined
  readonly sourceAddress: string
  readonly operation: string | undefined
  readonly key: string | undefined
  readonly allowed: boolean
  /** 200 for an allow, the deny's HTTP status otherwise. */
  readonly status: number
  readonly code: string | undefined
  readonly policyIds: readonly string[]
  readonly reason: string
  readonly body: Uint8Array
  readonly startedMs: number
}

/** Writes one decision durably; resolves once it is written and rejects when it cannot be. */
export type DecisionAuditor = (record: DecisionRecord) => Promise<void>

/** The audit writer id of authz on a node; the backend on the same node writes `nodeId`. */
export function authzAuditNode(nodeId: string): string {
  return `${nodeId}/authz`
}

/**
 * Returns an auditor that appends every decision to the store under authz's own hash chain,
 * in group commits shared by the decisions of one event-loop turn.
 * The record shares its decision id with the backend's record of the same request. Only the
 * body's SHA-256 is stored, never its content.
 */
export function storeAuditor(
  store: Pick<Store, 'appendAuditBatch'>,
  nodeId: string,
): DecisionAuditor {
  const node = authzAuditNode(nodeId)
  const batcher = new AuditBatcher(store)
  return async (record) => {
    const entry: AuditEntry = {
      time: new Date().toISOString(),
      node,
      principal: record.principal ?? '',
      certSerial: record.certSerial ? normalizeSerial(record.certSerial) : null,
      sourceAddress: record.sourceAddress === '' ? null : record.sourceAddress,
      decisionId: record.decisionId,
      operation: record.operation ?? 'unknown',
      key: record.key ?? null,
      keyVersion: null,
      outcome: record.allowed ? 'ok' : 'error',
      status: record.status,
      errorCode: record.code ?? null,
      policyIds: [...record.policyIds],
      reason: record.reason,
      requestDigest: createHash('sha256').update(record.body).digest('hex'),
      latencyMs: Math.round((performance.now() - record.startedMs) * 1000) / 1000,
    }
    await batcher.append(entry)
  }
}
