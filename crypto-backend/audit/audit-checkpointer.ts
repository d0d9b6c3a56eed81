import type { Logger } from '../../log/logger.js'
import { checkpointText } from '../../store/audit-checkpoint.js'
import type { AuditCheckpoint, AuditHead, Store } from '../../store/store.js'
import type { AuditKey } from './audit-key.js'

type CheckpointStore = Pick<Store, 'auditHeads' | 'auditCheckpoints' | 'putAuditCheckpoint'>

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
  atMs: number
}

/**
 * Signs checkpoints over the head of every writer's chain in the store, including writers this
 * process does not own (authz has no HSM PIN, so the backend signs for it). A writer gets a
 * checkpoint when `everyRecords` records have accumulated since its last one, or when
 * `intervalMs` has passed and it has any new record, and at stop(). Heads are polled, so a
 * checkpoint follows its trigger within one poll interval.
 */
export class AuditCheckpointer {
  private readonly last = new Map<string, LastCheckpoint>()
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
    for (const head of await this.store.auditHeads()) {
      const last = await this.lastCheckpoint(head.writer)
      if (head.seq <= last.seq) continue
      const due =
        force ||
        head.seq - last.seq >= this.options.everyRecords ||
        this.now() - last.atMs >= this.options.intervalMs
      if (!due) continue
      signed.push(await this.sign(head))
    }
    return signed
  }

  private async lastCheckpoint(writer: string): Promise<LastCheckpoint> {
    let last = this.last.get(writer)
    if (last === undefined) {
      const own = (await this.store.auditCheckpoints(writer))
        .filter((checkpoint) => checkpoint.signer === this.options.signer)
        .at(-1)
      last = { seq: own?.seq ?? 0, atMs: own === undefined ? this.startedMs : Date.parse(own.time) }
      this.last.set(writer, last)
    }
    return last
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
    this.last.set(head.writer, { seq: head.seq, atMs: nowMs })
    this.options.logger.debug({ writer: head.writer, seq: head.seq }, 'audit checkpoint signed')
    return checkpoint
  }
}
