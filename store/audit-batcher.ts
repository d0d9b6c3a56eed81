import { auditFaultCheck } from './audit-fault.js'
import type { AuditEntry, AuditRecord, Store } from './store.js'

/** Most records one transaction takes; a longer queue is written in several. */
const MAX_BATCH = 256

interface Pending {
  entry: AuditEntry
  resolve: (record: AuditRecord) => void
  reject: (error: unknown) => void
}

/**
 * Group commit for audit records: entries appended during one turn of the event loop, or while
 * the previous transaction is being written, go to the store in one `appendAuditBatch` call,
 * so concurrent requests share one durable commit. At most one call is in flight, which keeps
 * each writer's chain in the order of `append`. Each promise resolves only after its record is
 * committed, so a caller that waits for it responds only once the audit contains the record.
 * A failed transaction rejects every entry in it.
 */
export class AuditBatcher {
  private queue: Pending[] = []
  private scheduled = false
  private writing = false
  private readonly fault = auditFaultCheck()

  constructor(private readonly store: Pick<Store, 'appendAuditBatch'>) {}

  append(entry: AuditEntry): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject })
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return
    this.scheduled = true
    // setImmediate runs after the I/O callbacks of this turn, which may add more entries.
    setImmediate(() => void this.flush())
  }

  private async flush(): Promise<void> {
    this.scheduled = false
    this.writing = true
    const batch = this.queue.splice(0, MAX_BATCH)
    try {
      await this.write(batch)
    } finally {
      this.writing = false
      if (this.queue.length > 0) this.schedule()
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    let records: AuditRecord[]
    try {
      this.fault?.(batch.map((pending) => pending.entry.node))
      records = await this.store.appendAuditBatch(batch.map((pending) => pending.entry))
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }
    batch.forEach((pending, index) => pending.resolve(records[index]!))
  }
}
