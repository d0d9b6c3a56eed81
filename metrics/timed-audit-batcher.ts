import { AuditBatcher } from '../store/audit-batcher.js'
import type { AuditEntry, AuditRecord } from '../store/store.js'
import { timeAuditWrite } from './audit-metrics.js'

/** The backend's audit batcher, with write latency and failures measured per record. */
export class TimedAuditBatcher extends AuditBatcher {
  override append(entry: AuditEntry): Promise<AuditRecord> {
    return timeAuditWrite('backend', () => super.append(entry))
  }
}
