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
 * Group commit for audit records: entries appended during one turn of the event loop are
 * written in one durable transaction, so concurrent requests share one fsync. Each promise
 * resolves only after its record is committed, so a caller that waits for it still answers
 * only when the audit holds the record. A failed transaction rejects every entry in it.
 */
export class AuditBatcher {
  private queue: Pending[] = []
  private scheduled = false
  private readonly fault = auditFaultCheck()

  constructor(private readonly store: Pick<Store, 'appendAuditBatch'>) {}

  append(entry: AuditEntry): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject })
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    // setImmediate runs after the I/O callbacks of this turn, which may add more entries.
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.scheduled = false
    const batch = this.queue.splice(0, MAX_BATCH)
    if (this.queue.length > 0) this.schedule()
    let records: AuditRecord[]
    try {
      this.fault?.(batch.map((pending) => pending.entry.node))
      records = this.store.appendAuditBatch(batch.map((pending) => pending.entry))
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }
    batch.forEach((pending, index) => pending.resolve(records[index]!))
  }
}
