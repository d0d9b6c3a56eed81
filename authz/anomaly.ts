import { durationMs } from '../crypto-backend/pki/duration.js'
import type { AnomalyRuleConfig } from './controls-schema.js'
import { RateBaseline } from './anomaly-rate.js'
import { canonicalAddress } from './request-facts.js'
import { normalizeSerial } from '../store/certificate-serial.js'

/** What an anomaly rule sees of one request by an application. */
export interface UsageEvent {
  readonly app: string
  /** Registered addresses of the application; they never count as new. */
  readonly knownAddresses: readonly string[]
  readonly sourceAddress: string
  readonly serial: string
  readonly operation: string
  readonly key: string | undefined
  readonly nowMs: number
}

/** A rule that fired, with the actions its configuration names. */
export interface Finding {
  readonly rule: string
  readonly kind: AnomalyRuleConfig['kind']
  readonly subject: string
  readonly message: string
  readonly actions: readonly ('alert' | 'suspend' | 'require_approval')[]
  readonly approvalGroup?: string
  readonly approvalsRequired: number
  readonly details?: Record<string, string | number>
}

/** Records first uses durably; returns true the first time an (app, kind, value) is recorded. */
export type FirstUseLedger = (
  app: string,
  kind: string,
  value: string,
  at: string,
) => Promise<boolean>

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
/** Upper bound of in-memory entries per map; beyond it the map starts over. */
const MEMORY_LIMIT = 50_000

/**
 * Evaluates the configured anomaly rules for each request of an application. First uses go to
 * the ledger, so they survive restarts and are shared by nodes on the same store.
 */
export class AnomalyDetector {
  // NOTE: rate baselines and serial addresses live in this process only, so each gateway node
  // judges its own share of the traffic and a restart starts the warm-up again.
  private readonly rates = new Map<string, RateBaseline>()
  private readonly seenFirst = new Set<string>()
  /** First address each certificate serial was used from. */
  private readonly serialAddress = new Map<string, string>()

  constructor(
    private readonly rules: readonly AnomalyRuleConfig[],
    private readonly ledger: FirstUseLedger,
  ) {}

  /** Returns the findings of every rule that fires for this request, in rule order. */
  async observe(event: UsageEvent): Promise<Finding[]> {
    const findings: Finding[] = []
    for (const [index, rule] of this.rules.entries()) {
      const finding = await this.evaluate(rule, index, event)
      if (finding !== undefined) findings.push(finding)
    }
    return findings
  }

  private async evaluate(
    rule: AnomalyRuleConfig,
    index: number,
    event: UsageEvent,
  ): Promise<Finding | undefined> {
    const fire = (subject: string, message: string, details?: Record<string, string | number>) => ({
      rule: rule.name ?? rule.kind,
      kind: rule.kind,
      subject,
      message,
      actions: rule.action,
      ...(rule.approval_group === undefined ? {} : { approvalGroup: rule.approval_group }),
      approvalsRequired: rule.approvals_required,
      ...(details === undefined ? {} : { details }),
    })
    const at = new Date(event.nowMs).toISOString()
    switch (rule.kind) {
      case 'new_source_address': {
        const address = canonicalAddress(event.sourceAddress) ?? event.sourceAddress
        const known = event.knownAddresses.some((a) => canonicalAddress(a) === address)
        if (known || !(await this.first(event.app, 'address', address, at))) return undefined
        return fire(address, `application ${event.app} used from new address ${address}`)
      }
      case 'first_operation':
        if (!(await this.first(event.app, 'operation', event.operation, at))) return undefined
        return fire(
          event.operation,
          `application ${event.app} used operation ${event.operation} for the first time`,
        )
      case 'first_key':
        if (event.key === undefined || !(await this.first(event.app, 'key', event.key, at)))
          return undefined
        return fire(event.key, `application ${event.app} used key ${event.key} for the first time`)
      case 'serial_multiple_addresses':
        return this.serialCheck(event, fire)
      case 'outside_hours': {
        const now = new Date(event.nowMs)
        const hour = now.getUTCHours()
        const weekday = WEEKDAYS[now.getUTCDay()] as string
        const inside =
          hour >= rule.from_hour &&
          hour < rule.to_hour &&
          (rule.weekdays as string[]).includes(weekday)
        if (inside) return undefined
        return fire(
          `${weekday} ${hour}h`,
          `application ${event.app} used outside its hours (${weekday} ${hour}:00 UTC)`,
        )
      }
      case 'rate': {
        const key = `${index}\u0000${event.app}`
        let baseline = this.rates.get(key)
        if (baseline === undefined) {
          if (this.rates.size >= MEMORY_LIMIT) this.rates.clear()
          baseline = new RateBaseline(durationMs(rule.bucket), rule.alpha, rule.warmup_buckets)
          this.rates.set(key, baseline)
        }
        const rate = baseline.add(event.nowMs)
        const threshold = rule.factor * rate.baseline
        if (!rate.warm || rate.count < rule.min_requests || rate.count <= threshold)
          return undefined
        if (!baseline.claimReport()) return undefined
        return fire(
          'rate',
          `application ${event.app} made ${rate.count} requests in one ${rule.bucket} bucket, ` +
            `above ${rule.factor} times its baseline of ${rate.baseline.toFixed(2)}`,
          { count: rate.count, baseline: Number(rate.baseline.toFixed(3)), factor: rule.factor },
        )
      }
    }
  }

  private serialCheck(
    event: UsageEvent,
    fire: (subject: string, message: string, details?: Record<string, string | number>) => Finding,
  ): Finding | undefined {
    const address = canonicalAddress(event.sourceAddress) ?? event.sourceAddress
    // Findings print the serial as the audit, the CRL and `hsmgate certs revoke` do.
    const serial = normalizeSerial(event.serial)
    const first = this.serialAddress.get(serial)
    if (first === undefined) {
      if (this.serialAddress.size >= MEMORY_LIMIT) this.serialAddress.clear()
      this.serialAddress.set(serial, address)
      return undefined
    }
    if (first === address) return undefined
    return fire(
      serial,
      `certificate ${serial} of application ${event.app} used from ${first} and ${address}`,
      { first_address: first, address },
    )
  }

  private async first(app: string, kind: string, value: string, at: string): Promise<boolean> {
    const cacheKey = `${app}\u0000${kind}\u0000${value}`
    if (this.seenFirst.has(cacheKey)) return false
    if (this.seenFirst.size >= MEMORY_LIMIT) this.seenFirst.clear()
    // Marked seen before the ledger is read, so a concurrent request with the same value waits
    // for nothing and reports no second first use.
    this.seenFirst.add(cacheKey)
    return this.ledger(app, kind, value, at)
  }
}
