import type { Logger } from '../log/logger.js'
import { countAlert } from '../metrics/authz-metrics.js'
import type { WebhookSender } from './alert-webhook.js'

/** An alert as logged and sent to the webhook. It names things; it never carries a body or secret. */
export interface Alert {
  /** The rule that fired, such as `certificate_clone` or `rate`. */
  readonly rule: string
  readonly app: string
  /** Subject the rule fired on: an address, serial, operation, key or hour. Part of the dedup key. */
  readonly subject: string
  readonly message: string
  readonly decisionId: string
  /** Actions taken besides the alert, such as `suspend`. */
  readonly actions: readonly string[]
  /** Further facts: serials, addresses, counts. Only names and numbers, never request data. */
  readonly details?: Readonly<Record<string, string | number | boolean | undefined>>
}

/** The JSON body of an alert POST. */
export interface AlertPayload {
  type: 'hsmgate.alert'
  rule: string
  app: string
  subject: string
  message: string
  decision_id: string
  node: string
  time: string
  actions: string[]
  details: Record<string, string | number | boolean | undefined>
}

/** Raises alerts: one log line each and, with a webhook, one POST per dedup window. */
export interface Alerter {
  raise(alert: Alert): void
  /** Resolves when every queued webhook delivery has finished or given up. */
  idle(): Promise<void>
}

export interface AlerterOptions {
  readonly logger: Logger
  readonly node: string
  /** Alerts with the same rule, application and subject within this time are sent once. */
  readonly dedupWindowMs: number
  readonly webhook?: WebhookSender
  readonly now?: () => number
}

/** Upper bound of remembered dedup keys; the oldest half is dropped beyond it. */
const DEDUP_LIMIT = 10_000

/**
 * Creates an alerter. Every alert is logged at error level with `alert: RULE`; a repeat of the
 * same rule, application and subject within the dedup window is logged at info level as a
 * duplicate and not sent again. Webhook delivery runs in the background and never delays or
 * fails the request that raised the alert.
 */
export function createAlerter(options: AlerterOptions): Alerter {
  const now = options.now ?? Date.now
  const lastSent = new Map<string, number>()
  const deliveries = new Set<Promise<void>>()

  const isDuplicate = (key: string, at: number): boolean => {
    const last = lastSent.get(key)
    if (last !== undefined && at - last < options.dedupWindowMs) return true
    if (lastSent.size >= DEDUP_LIMIT) {
      for (const old of [...lastSent.keys()].slice(0, DEDUP_LIMIT / 2)) lastSent.delete(old)
    }
    lastSent.delete(key)
    lastSent.set(key, at)
    return false
  }

  return {
    raise(alert) {
      const at = now()
      const fields = {
        alert: alert.rule,
        app: alert.app,
        subject: alert.subject,
        decision_id: alert.decisionId,
        actions: alert.actions,
        ...alert.details,
      }
      // Every raise counts, duplicates too: the metric shows how often rules fire.
      countAlert({ rule: alert.rule, application: alert.app })
      if (isDuplicate(`${alert.rule}\u0000${alert.app}\u0000${alert.subject}`, at)) {
        options.logger.info({ ...fields, duplicate: true }, `alert repeated: ${alert.message}`)
        return
      }
      options.logger.error(fields, `ALERT: ${alert.message}`)
      if (options.webhook === undefined) return
      const delivery = options.webhook.send(payloadOf(alert, options.node, at))
      deliveries.add(delivery)
      void delivery.finally(() => deliveries.delete(delivery))
    },
    async idle() {
      while (deliveries.size > 0) await Promise.allSettled([...deliveries])
    },
  }
}

function payloadOf(alert: Alert, node: string, at: number): AlertPayload {
  return {
    type: 'hsmgate.alert',
    rule: alert.rule,
    app: alert.app,
    subject: alert.subject,
    message: alert.message,
    decision_id: alert.decisionId,
    node,
    time: new Date(at).toISOString(),
    actions: [...alert.actions],
    details: { ...alert.details },
  }
}
