import { Counter, Histogram } from 'prom-client'
import { LATENCY_BUCKETS, UNKNOWN_LABEL, metricsRegistry } from './registry.js'

/** Labels of one authorization decision. */
export interface DecisionLabels {
  /** Operation name from the route table, or undefined when the route is unknown. */
  operation: string | undefined
  /** Key name, only when the key exists in the store; otherwise undefined. */
  key: string | undefined
  /** Registered application name, or undefined for services and unknown principals. */
  application: string | undefined
  allowed: boolean
  /** HTTP status of the response: 200 for an allow. */
  status: number
}

const decisions = new Counter({
  name: 'hsmgate_authz_decisions_total',
  help: 'ext_authz decisions by operation, key, application, result (allow, deny) and status.',
  labelNames: ['operation', 'key', 'application', 'result', 'status'] as const,
  registers: [metricsRegistry],
})

const checkSeconds = new Histogram({
  name: 'hsmgate_authz_check_seconds',
  help: 'Time to decide one ext_authz Check, audit write included, in seconds.',
  labelNames: ['operation', 'result'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
})

const quotaRejections = new Counter({
  name: 'hsmgate_quota_rejections_total',
  help: 'Requests rejected because a quota or rate limit was exhausted.',
  labelNames: ['application', 'key', 'quota'] as const,
  registers: [metricsRegistry],
})

const alerts = new Counter({
  name: 'hsmgate_alerts_total',
  help: 'Alerts raised by anomaly rules and other detectors, by rule and application.',
  labelNames: ['rule', 'application', 'severity'] as const,
  registers: [metricsRegistry],
})

/**
 * Counts one decision and observes its latency. Label values come only from the route table
 * and the store, so their number is bounded; certificate serials and addresses are never labels.
 */
export function recordDecision(labels: DecisionLabels, seconds: number): void {
  const operation = labels.operation ?? UNKNOWN_LABEL
  const result = labels.allowed ? 'allow' : 'deny'
  decisions.inc({
    operation,
    key: labels.key ?? UNKNOWN_LABEL,
    application: labels.application ?? UNKNOWN_LABEL,
    result,
    status: String(labels.status),
  })
  checkSeconds.observe({ operation, result }, seconds)
}

/**
 * Counts a request rejected by a quota. `quota` names the configured quota or rate limit (a
 * bounded set); `application` and `key` must be names from the store.
 */
export function countQuotaRejection(labels: {
  application: string
  key?: string
  quota: string
}): void {
  quotaRejections.inc({
    application: labels.application,
    key: labels.key ?? UNKNOWN_LABEL,
    quota: labels.quota,
  })
}

/**
 * Counts an alert. `rule` names the configured rule that fired; `application` must be a name
 * from the store, or undefined when the alert concerns no single application.
 */
export function countAlert(labels: {
  rule: string
  application?: string
  severity?: 'info' | 'warning' | 'critical'
}): void {
  alerts.inc({
    rule: labels.rule,
    application: labels.application ?? UNKNOWN_LABEL,
    severity: labels.severity ?? 'warning',
  })
}
