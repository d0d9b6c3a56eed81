import type { Logger } from '../../log/logger.js'
import { GENESIS_HASH } from '../../store/audit-chain.js'
import { checkCheckpoint, checkpointText, TrustedAuditKeys } from '../../store/audit-checkpoint.js'
import type { AuditCheckpoint, AuditHead, Store } from '../../store/store.js'
import type { AuditKey } from './audit-key.js'
import { checkChainSegment, type ChainMismatch } from './chain-segment.js'

type CheckpointStore = Pick<
  Store,
  'auditHeads' | 'auditCheckpoints' | 'putAuditCheckpoint' | 'auditRecordsAfter'
>

export interface CheckpointerOptions {
  /** Node id of this backend, recorded as the checkpoint's signer. */
  signer: string
  /** Records past a writer's last checkpoint that trigger the next one. */
  everyRecords: number
  /** Time after a writer's last checkpoint after which new records trigger the next one. */
  intervalMs: number
  logger: Logger
  /** How often the store's chain heads are read; default the lesser of 1 s and intervalMs. */
  pollMs?: number
  /** Clock in milliseconds since the Unix epoch, replaced in tests. */
  now?: () => number
}

interface LastCheckpoint {
  seq: number
  /** Head hash the last checkpoint signed; the genesis hash before the first one. */
  hash: string
  atMs: number
}

/** Log field and alert name of a chain that does not extend the last signed checkpoint. */
export const CHAIN_MISMATCH_ALERT = 'audit_chain_mismatch'

/**
 * Signs checkpoints over the chain heads of this node's two writers: the backend (`signer`) and
 * its authz (`signer/authz`, because authz has no HSM PIN). Chains of other writers in the store
 * are never signed, since a process that can write the store could append them. A writer gets a
 * checkpoint when `everyRecords` records have accumulated since its last one, or when
 * `intervalMs` has passed and it has any new record, and at stop(). Heads are polled, so a
 * checkpoint follows its trigger within one poll interval.
 *
 * Before signing, every record from the last signed checkpoint up to the new head is checked:
 * hashes recomputed and links followed. When the chain does not extend what was signed, no
 * checkpoint is signed for that writer, and an error with the field `alert` is logged once per
 * head, which `hsmgate status` lists.
 */
export class AuditCheckpointer {
  private readonly last = new Map<string, LastCheckpoint>()
  private readonly ownKey = new TrustedAuditKeys()
  /** Heads already reported as mismatched, so that a poll does not repeat the alert. */
  private readonly reported = new Map<string, string>()
  private readonly now: () => number
  private readonly startedMs: number
  private timer: NodeJS.Timeout | undefined
  private running: Promise<AuditCheckpoint[]> | undefined
  /** Consecutive failed polls, so that a lasting failure is logged once a minute, not per poll. */
  private failures = 0

  constructor(
    private readonly store: CheckpointStore,
    private readonly key: AuditKey,
    private readonly options: CheckpointerOptions,
  ) {
    this.now = options.now ?? Date.now
    this.startedMs = this.now()
    this.ownKey.addPem(key.publicKeyPem)
  }

  /** The writers whose chains this node signs. */
  get writers(): readonly string[] {
    return [this.options.signer, `${this.options.signer}/authz`]
  }

  /** Starts polling. Failures are logged and retried at the next poll. */
  start(): void {
    const pollMs = this.options.pollMs ?? Math.min(1000, this.options.intervalMs)
    this.timer = setInterval(() => void this.poll(), pollMs)
    this.timer.unref()
  }

  private async poll(): Promise<void> {
    try {
      await this.checkpoint(false)
      if (this.failures > 0) {
        this.options.logger.info({ failures: this.failures }, 'audit checkpoints resumed')
      }
      this.failures = 0
    } catch (error) {
      this.failures++
      if (this.failures === 1 || this.failures % 60 === 0) {
        this.options.logger.error(
          { err: error, failures: this.failures },
          'audit checkpoint failed; retrying at the next poll',
        )
      }
    }
  }

  /** Stops polling and signs a final checkpoint for every writer with unsigned records. */
  async stop(): Promise<AuditCheckpoint[]> {
    clearInterval(this.timer)
    this.timer = undefined
    return this.checkpoint(true)
  }

  /**
   * Signs the due checkpoints now, or with `force` one for every writer with new records.
   * Calls never overlap: a call during a running one waits for it, then runs.
   */
  async checkpoint(force: boolean): Promise<AuditCheckpoint[]> {
    while (this.running !== undefined) await this.running.catch(() => undefined)
    this.running = this.signDue(force)
    try {
      return await this.running
    } finally {
      this.running = undefined
    }
  }

  private async signDue(force: boolean): Promise<AuditCheckpoint[]> {
    const signed: AuditCheckpoint[] = []
    const own = new Set(this.writers)
    for (const head of await this.store.auditHeads()) {
      if (!own.has(head.writer)) continue
      const last = await this.lastCheckpoint(head.writer)
      if (head.seq <= last.seq) continue
      const due =
        force ||
        head.seq - last.seq >= this.options.everyRecords ||
        this.now() - last.atMs >= this.options.intervalMs
      if (!due) continue
      const mismatch = await checkChainSegment(this.store, head, last)
      if (mismatch !== undefined) {
        this.reportMismatch(head, mismatch)
        continue
      }
      signed.push(await this.sign(head))
    }
    return signed
  }

  /**
   * Returns the newest checkpoint of the writer that this node signed, as read from the store
   * once and then kept in memory. A stored checkpoint counts only when it verifies with this
   * node's audit key, so a row that a store writer added under this node's name is ignored.
   */
  private async lastCheckpoint(writer: string): Promise<LastCheckpoint> {
    let last = this.last.get(writer)
    if (last === undefined) {
      const own = (await this.store.auditCheckpoints(writer))
        .filter((checkpoint) => checkpoint.signer === this.options.signer)
        .filter((checkpoint) => checkCheckpoint(checkpoint, this.ownKey).ok)
        .at(-1)
      last = {
        seq: own?.seq ?? 0,
        hash: own?.headHash ?? GENESIS_HASH,
        atMs: own === undefined ? this.startedMs : Date.parse(own.time),
      }
      this.last.set(writer, last)
    }
    return last
  }

  private reportMismatch(head: AuditHead, mismatch: ChainMismatch): void {
    if (this.reported.get(head.writer) === head.hash) return
    this.reported.set(head.writer, head.hash)
    this.options.logger.error(
      {
        alert: CHAIN_MISMATCH_ALERT,
        writer: head.writer,
        seq: mismatch.seq,
        head_seq: head.seq,
        signed_seq: mismatch.signedSeq,
      },
      `ALERT: audit chain of ${head.writer} does not extend its last signed checkpoint ` +
        `(${mismatch.message}); no checkpoint is signed until an operator runs ` +
        "'hsmgate audit verify' and repairs the store",
    )
  }

  private async sign(head: AuditHead): Promise<AuditCheckpoint> {
    const nowMs = this.now()
    const claims = {
      writer: head.writer,
      seq: head.seq,
      headHash: head.hash,
      time: new Date(nowMs).toISOString(),
      signer: this.options.signer,
      keyId: this.key.keyId,
    }
    const signature = await this.key.sign(Buffer.from(checkpointText(claims), 'utf8'))
    const checkpoint: AuditCheckpoint = {
      ...claims,
      publicKey: this.key.publicKeyPem,
      signature: signature.toString('base64'),
    }
    await this.store.putAuditCheckpoint(checkpoint)
    this.last.set(head.writer, { seq: head.seq, hash: head.hash, atMs: nowMs })
    this.options.logger.debug({ writer: head.writer, seq: head.seq }, 'audit checkpoint signed')
    return checkpoint
  }
}
