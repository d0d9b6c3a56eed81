import { durationMs } from '../crypto-backend/pki/duration.js'
import { countQuotaRejection } from '../metrics/authz-metrics.js'
import type { Deny } from './check-response.js'
import type { QuotaConfig } from './controls-schema.js'
import { MemoryQuotaCounter, type QuotaCounter } from './quota-counter.js'

/** A quota with its name and window in milliseconds. */
export interface Quota {
  readonly name: string
  readonly app: string
  readonly key?: string
  readonly operation?: string
  readonly limit: number
  readonly windowMs: number
}

/** The request a quota is charged for. */
export interface QuotaRequest {
  readonly app: string
  readonly operation: string
  readonly key: string | undefined
}

/** Returns extra requests per window that approved quota extensions grant for a quota. */
export type QuotaExtension = (app: string, quota: string, nowMs: number) => Promise<number>

/** Builds the quotas from authz.quotas; a quota without a name is quota-N, N from 1. */
export function quotasFromConfig(configs: readonly QuotaConfig[]): Quota[] {
  return configs.map((config, index) => ({
    name: config.name ?? `quota-${index + 1}`,
    app: config.app,
    ...(config.key === undefined ? {} : { key: config.key }),
    ...(config.operation === undefined ? {} : { operation: config.operation }),
    limit: config.limit,
    windowMs: durationMs(config.window),
  }))
}

/** Charges each allowed request against the quotas that match it. */
export class QuotaEnforcer {
  constructor(
    readonly quotas: readonly Quota[],
    private readonly counter: QuotaCounter = new MemoryQuotaCounter(),
    private readonly extension: QuotaExtension = async () => 0,
  ) {}

  /**
   * Returns a 429 deny when any matching quota is used up, and charges nothing then. Otherwise
   * charges every matching quota and returns undefined. Retry-After is the whole seconds until
   * the window admits the next request, rounded up.
   */
  async charge(request: QuotaRequest, nowMs: number): Promise<Deny | undefined> {
    const matching = this.quotas.filter((quota) => matches(quota, request))
    if (matching.length === 0) return undefined
    const extras: number[] = []
    for (const quota of matching) extras.push(await this.extension(quota.app, quota.name, nowMs))
    const charges = matching.map((quota, index) => ({
      counter: counterOf(quota),
      limit: quota.limit + (extras[index] as number),
      windowMs: quota.windowMs,
    }))
    // The counter checks and records all matching quotas in one step, so concurrent requests,
    // on this node or on others sharing the counter, cannot both take one last free slot.
    const waits = await this.counter.charge(charges, nowMs)
    let blocked: { quota: Quota; waitMs: number } | undefined
    for (const [index, quota] of matching.entries()) {
      const waitMs = waits[index] ?? 0
      if (waitMs > 0 && (blocked === undefined || waitMs > blocked.waitMs)) {
        blocked = { quota, waitMs }
      }
    }
    if (blocked !== undefined) {
      // The configured key, not the requested one, so that the label takes only known names.
      const { quota } = blocked
      countQuotaRejection({ application: quota.app, key: quota.key, quota: quota.name })
      return quotaDeny(quota, blocked.waitMs)
    }
    return undefined
  }
}

function matches(quota: Quota, request: QuotaRequest): boolean {
  if (quota.app !== request.app) return false
  if (quota.operation !== undefined && quota.operation !== request.operation) return false
  return quota.key === undefined || quota.key === request.key
}

/** Names a quota's counter unambiguously, without the NUL byte that PostgreSQL text rejects. */
function counterOf(quota: Quota): string {
  return JSON.stringify([quota.name, quota.app])
}

function quotaDeny(quota: Quota, waitMs: number): Deny {
  const retryAfter = Math.max(1, Math.ceil(waitMs / 1000))
  return {
    status: 429,
    code: 'quota_exceeded',
    message:
      `quota '${quota.name}' allows ${quota.limit} requests per ${quota.windowMs / 1000} s; ` +
      `retry after ${retryAfter} s`,
    reason: 'quota_exceeded',
    headers: { 'retry-after': String(retryAfter) },
    logFields: { quota: quota.name, retry_after_s: retryAfter },
  }
}
