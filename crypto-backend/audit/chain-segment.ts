import { chainHash } from '../../store/audit-chain.js'
import type { AuditHead, Store } from '../../store/store.js'

type RecordReader = Pick<Store, 'auditRecordsAfter'>

/** The part of a chain that was signed before: the seq and hash of the last checkpoint. */
export interface SignedPoint {
  readonly seq: number
  /** Head hash of that checkpoint; the genesis hash when seq is 0. */
  readonly hash: string
}

/** Where a chain stops extending its last signed checkpoint. */
export interface ChainMismatch {
  /** Seq of the first record that fails. */
  readonly seq: number
  /** Seq of the last checkpoint the chain should extend. */
  readonly signedSeq: number
  readonly message: string
}

/** Records read per query, which bounds memory when many records wait for a checkpoint. */
const PAGE_SIZE = 1000

/**
 * Checks that the records of `head.writer` from `signed.seq` to `head.seq` extend the signed
 * point: the record at `signed.seq` still has the signed hash, seqs run without gaps, each record
 * links to the previous hash, and each hash is the chain hash of its record. Returns the first
 * failure, or undefined when the whole segment is sound.
 */
export async function checkChainSegment(
  store: RecordReader,
  head: AuditHead,
  signed: SignedPoint,
): Promise<ChainMismatch | undefined> {
  const mismatch = (seq: number, message: string): ChainMismatch => ({
    seq,
    signedSeq: signed.seq,
    message,
  })
  let prevSeq = signed.seq
  let prevHash = signed.hash
  // The page starts one record early so that the signed record itself is compared too.
  let after = Math.max(0, signed.seq - 1)
  let signedSeen = signed.seq === 0
  while (prevSeq < head.seq) {
    const page = await store.auditRecordsAfter(head.writer, after, PAGE_SIZE)
    if (page.length === 0) return mismatch(prevSeq + 1, `record ${prevSeq + 1} is missing`)
    for (const record of page) {
      if (record.seq > head.seq) return undefined
      if (record.seq === signed.seq) {
        if (record.hash !== signed.hash) {
          return mismatch(record.seq, `record ${record.seq} no longer has the signed head hash`)
        }
        signedSeen = true
        continue
      }
      if (!signedSeen) return mismatch(signed.seq, `signed record ${signed.seq} is missing`)
      if (record.seq !== prevSeq + 1) {
        return mismatch(prevSeq + 1, `record ${prevSeq + 1} is missing`)
      }
      if (record.prevHash !== prevHash) {
        return mismatch(record.seq, `record ${record.seq} does not link to record ${prevSeq}`)
      }
      if (chainHash(record.prevHash, record.seq, record) !== record.hash) {
        return mismatch(record.seq, `record ${record.seq} does not match its hash`)
      }
      if (record.seq === head.seq && record.hash !== head.hash) {
        return mismatch(record.seq, `record ${record.seq} changed while it was checked`)
      }
      prevSeq = record.seq
      prevHash = record.hash
    }
    after = page[page.length - 1]!.seq
    if (page.length < PAGE_SIZE && prevSeq < head.seq) {
      return mismatch(prevSeq + 1, `record ${prevSeq + 1} is missing`)
    }
  }
  return undefined
}
