import { chainHash } from './audit-chain.js'
import type { TrustedAuditKeys } from './audit-checkpoint.js'
import type { AuditReceipt } from './audit-receipt.js'
import { verifyWriter } from './audit-verify.js'
import type { AuditCheckpoint, Store } from './store.js'

/** The outcome of proving a receipt against the log. */
export type ReceiptProof =
  | { status: 'covered'; message: string; checkpoint: AuditCheckpoint }
  | { status: 'not_covered'; message: string }
  | { status: 'failed'; message: string }

type ProofStore = Pick<Store, 'auditRecordsAfter' | 'auditCheckpoints'>

/**
 * Checks that the log contains the receipt's record. The record must exist at the writer and
 * seq with the receipt's decision id and hash, and its hash must match its contents. The
 * writer's chain must be intact from record 1 up to a trusted checkpoint at or after the record.
 */
export async function proveReceipt(
  store: ProofStore,
  receipt: AuditReceipt,
  trusted: TrustedAuditKeys,
): Promise<ReceiptProof> {
  const at = `writer ${receipt.writer} seq ${receipt.seq}`
  const record = (await store.auditRecordsAfter(receipt.writer, receipt.seq - 1, 1))[0]
  if (record === undefined || record.seq !== receipt.seq) {
    return { status: 'failed', message: `the log has no record at ${at}` }
  }
  if (record.decisionId !== receipt.decision_id) {
    return {
      status: 'failed',
      message: `the record at ${at} has decision id ${record.decisionId}, not ${receipt.decision_id}`,
    }
  }
  if (record.hash !== receipt.hash) {
    return {
      status: 'failed',
      message: `the record at ${at} has a different hash than the receipt`,
    }
  }
  if (chainHash(record.prevHash, record.seq, record) !== record.hash) {
    return { status: 'failed', message: `the record at ${at} does not match its hash` }
  }

  const chain = await verifyWriter(store, receipt.writer, trusted)
  const firstProblem = chain.problems[0]
  const coveredSeq = chain.coveredSeq
  if (firstProblem !== undefined && firstProblem.seq <= Math.max(coveredSeq, receipt.seq)) {
    return {
      status: 'failed',
      message: `the chain of ${receipt.writer} is broken at seq ${firstProblem.seq}: ${firstProblem.message}`,
    }
  }
  if (coveredSeq < receipt.seq) {
    return {
      status: 'not_covered',
      message:
        `the record at ${at} is in the log, but no signed checkpoint covers it yet ` +
        `(the newest is at seq ${coveredSeq}); verify again after the next checkpoint`,
    }
  }
  const checkpoints = await store.auditCheckpoints(receipt.writer)
  const checkpoint = checkpoints.find((candidate) => candidate.seq === coveredSeq)!
  return {
    status: 'covered',
    message:
      `the record at ${at} is in the log under the checkpoint at seq ${coveredSeq}, signed by ` +
      `${checkpoint.signer} at ${checkpoint.time}`,
    checkpoint,
  }
}
