/** Retry timing of the agent: capped exponential backoff with full jitter. */
export interface BackoffPolicy {
  /** Delay ceiling of the first retry, in milliseconds. */
  readonly baseMs: number
  /** Upper bound on any single delay, in milliseconds. */
  readonly capMs: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 5 * 60_000 }

/**
 * Returns the delay before retry number `attempt` (0 for the first retry): a uniformly random
 * time from 0 to min(cap, base * 2^attempt). Full jitter keeps many agents that failed together
 * from retrying together.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}

/** Default renewal point: two thirds of the lifetime, which leaves a third for retries. */
export const DEFAULT_RENEW_AT = 2 / 3

/** Bounds of the renewal point, as a fraction of the lifetime measured from notBefore. */
export const RENEW_AT_RANGE = { min: 0.1, max: 0.9 } as const

/**
 * Returns when a certificate should be renewed: after `fraction` of the span from notBefore to
 * notAfter (two thirds by default).
 */
export function renewalDue(
  notBefore: Date,
  notAfter: Date,
  fraction: number = DEFAULT_RENEW_AT,
): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime()
  return new Date(notBefore.getTime() + Math.floor(lifetime * fraction))
}
