import { chainHash, GENESIS_HASH } from './audit-chain.js'
import { checkCheckpoint, type TrustedAuditKeys } from './audit-checkpoint.js'
import type { AuditCheckpoint, AuditRecord, Store } from './store.js'

/** Kinds of failure that verification reports, each naming a writer and seq. */
export type AuditProblemKind =
  | 'record_missing'
  | 'record_edited'
  | 'records_inserted'
  | 'chain_broken'
  | 'checkpoint_mismatch'
  | 'records_truncated'
  | 'checkpoint_untrusted_key'
  | 'checkpoint_bad_signature'
  | 'checkpoint_foreign_signer'

/** One failed check: the writer, the first bad seq and what is wrong there. */
export interface AuditProblem {
  kind: AuditProblemKind
  writer: string
  seq: number
  message: string
}

/** Verification result of one writer's chain. */
export interface WriterVerification {
  writer: string
  records: number
  headSeq: number
  /** Checkpoints with a trusted key and a valid signature. */
  validCheckpoints: number
  /** Seq of the newest valid checkpoint that matches the chain, 0 when there is none. */
  coveredSeq: number
  /** Problems, in the order found: at most one chain problem, plus checkpoint problems. */
  problems: AuditProblem[]
}

type AuditReader = Pick<Store, 'auditRecordsAfter' | 'auditCheckpoints'>

/** Records read per query, which bounds memory for long chains. */
const PAGE_SIZE = 1000
/** How many recent record hashes are kept to recognise inserted records. */
const RECENT_HASHES = 10_000

/**
 * Verifies one writer's chain: recomputes every record hash, checks that seqs run 1, 2, 3 ...
 * without gaps and that each record links to the previous hash, checks every checkpoint's key
 * and signature, and checks that each valid checkpoint's head is still the hash of the record at
 * its seq. The chain scan stops at the first broken record, because every later record would
 * fail too.
 */
export async function verifyWriter(
  store: AuditReader,
  writer: string,
  trusted: TrustedAuditKeys,
): Promise<WriterVerification> {
  const problems: AuditProblem[] = []
  const checkpoints = validCheckpoints(await store.auditCheckpoints(writer), trusted, problems)
  let newestCheckpoint = 0
  for (const seq of checkpoints.keys()) newestCheckpoint = Math.max(newestCheckpoint, seq)
  const scan = new ChainScan(writer, checkpoints)

  let after = 0
  for (;;) {
    const page = await store.auditRecordsAfter(writer, after, PAGE_SIZE)
    for (const record of page) {
      const problem = scan.next(record)
      if (problem !== undefined) {
        problems.unshift(problem)
        return result(writer, scan, checkpoints, problems)
      }
    }
    if (page.length < PAGE_SIZE) break
    after = page[page.length - 1]!.seq
  }

  if (scan.lastSeq < newestCheckpoint) {
    problems.unshift({
      kind: 'records_truncated',
      writer,
      seq: scan.lastSeq + 1,
      message:
        `records ${scan.lastSeq + 1} to ${newestCheckpoint} are missing, but a signed ` +
        `checkpoint covers seq ${newestCheckpoint}: the chain was truncated`,
    })
  }
  return result(writer, scan, checkpoints, problems)
}

function result(
  writer: string,
  scan: ChainScan,
  checkpoints: Map<number, AuditCheckpoint[]>,
  problems: AuditProblem[],
): WriterVerification {
  return {
    writer,
    records: scan.count,
    headSeq: scan.lastSeq,
    validCheckpoints: [...checkpoints.values()].reduce((n, list) => n + list.length, 0),
    coveredSeq: scan.coveredSeq,
    problems,
  }
}

/** Keeps the checkpoints with a trusted key and a valid signature, grouped by seq. */
function validCheckpoints(
  checkpoints: AuditCheckpoint[],
  trusted: TrustedAuditKeys,
  problems: AuditProblem[],
): Map<number, AuditCheckpoint[]> {
  const valid = new Map<number, AuditCheckpoint[]>()
  for (const checkpoint of checkpoints) {
    const check = checkCheckpoint(checkpoint, trusted)
    if (!check.ok) {
      const untrusted = check.reason === 'untrusted_key'
      problems.push({
        kind: untrusted ? 'checkpoint_untrusted_key' : 'checkpoint_bad_signature',
        writer: checkpoint.writer,
        seq: checkpoint.seq,
        message: untrusted
          ? `checkpoint at seq ${checkpoint.seq} by ${checkpoint.signer} is signed with a key ` +
            'that is not a trusted audit key'
          : `checkpoint at seq ${checkpoint.seq} by ${checkpoint.signer} has an invalid signature`,
      })
      continue
    }
    if (checkpoint.signer !== writerNode(checkpoint.writer)) {
      problems.push({
        kind: 'checkpoint_foreign_signer',
        writer: checkpoint.writer,
        seq: checkpoint.seq,
        message:
          `checkpoint at seq ${checkpoint.seq} is signed by node ${checkpoint.signer}, but only ` +
          `node ${writerNode(checkpoint.writer)} signs the chain of ${checkpoint.writer}`,
      })
      continue
    }
    valid.set(checkpoint.seq, [...(valid.get(checkpoint.seq) ?? []), checkpoint])
  }
  return valid
}

/**
 * Returns the node whose backend signs a writer's chain: the writer name up to its first '/',
 * because node `N` writes the chains `N` (backend) and `N/authz`.
 */
export function writerNode(writer: string): string {
  const slash = writer.indexOf('/')
  return slash === -1 ? writer : writer.slice(0, slash)
}

/** The state of a scan along one chain, fed one record at a time in seq order. */
class ChainScan {
  count = 0
  lastSeq = 0
  coveredSeq = 0
  private prevHash = GENESIS_HASH
  private readonly recent = new Map<string, number>()

  constructor(
    private readonly writer: string,
    private readonly checkpoints: Map<number, AuditCheckpoint[]>,
  ) {}

  /** Checks the next record; returns the problem when the chain breaks at it. */
  next(record: AuditRecord): AuditProblem | undefined {
    const problem = this.linkProblem(record) ?? this.checkpointProblem(record)
    if (problem !== undefined) return problem
    this.count++
    this.lastSeq = record.seq
    this.prevHash = record.hash
    this.recent.set(record.hash, record.seq)
    if (this.recent.size > RECENT_HASHES) this.recent.delete(this.recent.keys().next().value!)
    if (this.checkpoints.has(record.seq)) this.coveredSeq = record.seq
    return undefined
  }

  private linkProblem(record: AuditRecord): AuditProblem | undefined {
    const expected = this.lastSeq + 1
    const at = (kind: AuditProblemKind, seq: number, message: string): AuditProblem => ({
      kind,
      writer: this.writer,
      seq,
      message,
    })
    if (record.seq !== expected) {
      return at(
        'record_missing',
        expected,
        `record ${expected} is missing: the chain goes from seq ${this.lastSeq} to ${record.seq}`,
      )
    }
    if (record.prevHash !== this.prevHash) {
      const linked = this.recent.get(record.prevHash)
      if (linked !== undefined && linked < this.lastSeq) {
        return at(
          'records_inserted',
          linked + 1,
          `records ${linked + 1} to ${this.lastSeq} were inserted: record ${record.seq} ` +
            `links to record ${linked}`,
        )
      }
      return at(
        'chain_broken',
        record.seq,
        `record ${record.seq} does not link to record ${this.lastSeq}: one of them was ` +
          'replaced, or records between them were removed or reordered',
      )
    }
    if (chainHash(record.prevHash, record.seq, record) !== record.hash) {
      return at(
        'record_edited',
        record.seq,
        `record ${record.seq} does not match its hash: its contents or position were changed`,
      )
    }
    return undefined
  }

  private checkpointProblem(record: AuditRecord): AuditProblem | undefined {
    const signed = this.checkpoints.get(record.seq) ?? []
    const mismatch = signed.find((checkpoint) => checkpoint.headHash !== record.hash)
    if (mismatch === undefined) return undefined
    const from = this.coveredSeq + 1
    return {
      kind: 'checkpoint_mismatch',
      writer: this.writer,
      seq: from,
      message:
        `checkpoint at seq ${record.seq} signed head ${mismatch.headHash.slice(0, 16)}... but ` +
        `the chain has ${record.hash.slice(0, 16)}...: records ${from} to ${record.seq} were ` +
        'rewritten with recomputed hashes',
    }
  }
}
