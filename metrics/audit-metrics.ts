import { Counter, Histogram } from 'prom-client'
import { LATENCY_BUCKETS, metricsRegistry } from './registry.js'

/** The process that writes an audit record: authz writes decisions, the backend outcomes. */
export type AuditWriter = 'authz' | 'backend'

const auditWriteSeconds = new Histogram({
  name: 'hsmgate_audit_write_seconds',
  help: 'Time from queueing an audit record to its durable commit, in seconds.',
  labelNames: ['writer'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
})

const auditWriteFailures = new Counter({
  name: 'hsmgate_audit_write_failures_total',
  help: 'Audit records that could not be written; each withheld a response (fail closed).',
  labelNames: ['writer'] as const,
  registers: [metricsRegistry],
})

/**
 * Runs one audit write, observes its duration and counts its failure. The result or the error
 * of `write` passes through unchanged.
 */
export async function timeAuditWrite<T>(writer: AuditWriter, write: () => Promise<T>): Promise<T> {
  const started = performance.now()
  try {
    const result = await write()
    auditWriteSeconds.observe({ writer }, (performance.now() - started) / 1000)
    return result
  } catch (error) {
    auditWriteFailures.inc({ writer })
    throw error
  }
}
