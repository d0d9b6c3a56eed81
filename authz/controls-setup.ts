import { durationMs } from '../crypto-backend/pki/duration.js'
import type { LoadedConfig } from '../config/load.js'
import type { Logger } from '../log/logger.js'
import type { Store } from '../store/store.js'
import { createAlerter, type Alerter } from './alert.js'
import { webhookSender } from './alert-webhook.js'
import { AnomalyDetector } from './anomaly.js'
import { DualControl } from './approval-rules.js'
import type { RuntimeControls } from './controls.js'
import type { ApprovalsDeps } from '../crypto-backend/routes/approvals.js'
import { QuotaEnforcer, quotasFromConfig } from './quota.js'
import { MemoryQuotaCounter, type QuotaCounter } from './quota-counter.js'

/** Creates the alerter from authz.alerts: log lines, plus webhook POSTs when a URL is set. */
export function alerterFromConfig(config: LoadedConfig, logger: Logger): Alerter {
  const alerts = config.authz.alerts
  const webhookUrl = alerts?.webhook_url
  return createAlerter({
    logger,
    node: config.node_id,
    dedupWindowMs: durationMs(alerts?.dedup_window ?? '10m'),
    ...(webhookUrl === undefined
      ? {}
      : {
          webhook: webhookSender({
            url: webhookUrl,
            attempts: alerts?.webhook_attempts ?? 5,
            backoffMs: durationMs(alerts?.webhook_backoff ?? '500ms'),
            timeoutMs: durationMs(alerts?.webhook_timeout ?? '5s'),
            logger,
          }),
        }),
  })
}

/**
 * Builds quotas, anomaly rules and dual control from the configuration, on the shared store.
 * Quotas are counted by `counter`: in this process's memory unless the caller passes the
 * store's shared counter (quotaCounterFor).
 */
export function runtimeControls(
  config: LoadedConfig,
  store: Pick<Store, 'controls' | 'putApplication'>,
  alerter: Alerter,
  counter: QuotaCounter = new MemoryQuotaCounter(),
): RuntimeControls {
  const controls = store.controls
  const trustDomain = config.trust_domain
  const quotas = quotasFromConfig(config.authz.quotas ?? [])
  const anomalies = config.authz.anomalies ?? []
  return {
    state: controls,
    alerter,
    suspend: (app) => store.putApplication(app),
    dualControl: new DualControl(
      config.authz.approvals ?? { groups: {}, rules: [], max_ttl: '1h' },
    ),
    ...(quotas.length === 0
      ? {}
      : {
          quotas: new QuotaEnforcer(quotas, counter, (app, quota, nowMs) =>
            controls.quotaExtension(
              `spiffe://${trustDomain}/app/${app}`,
              quota,
              new Date(nowMs).toISOString(),
            ),
          ),
        }),
    ...(anomalies.length === 0
      ? {}
      : {
          anomalies: new AnomalyDetector(anomalies, (app, kind, value, at) =>
            controls.recordFirstUse(app, kind, value, at),
          ),
        }),
  }
}

/** Pending approval requests one requester may have when authz.approvals.max_pending is unset. */
export const DEFAULT_MAX_PENDING = 20

/** Builds what the backend's approvals API needs from the configuration and the store. */
export function approvalsDeps(
  config: LoadedConfig,
  store: Pick<Store, 'controls' | 'keyVersions'>,
): ApprovalsDeps {
  const approvals = config.authz.approvals ?? { groups: {}, rules: [], max_ttl: '1h' }
  return {
    dualControl: new DualControl(approvals),
    controls: store.controls,
    trustDomain: config.trust_domain,
    quotas: config.authz.quotas ?? [],
    maxTtlMs: durationMs(approvals.max_ttl),
    maxPending: approvals.max_pending ?? DEFAULT_MAX_PENDING,
    keyVersions: (name) => store.keyVersions(name),
  }
}
