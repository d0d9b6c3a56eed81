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

/**
 * When a certificate should be renewed: after two thirds of its lifetime, which leaves a third
 * for retries before it expires.
 */
export function renewalDue(notBefore: Date, notAfter: Date): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime()
  return new Date(notBefore.getTime() + Math.floor((lifetime * 2) / 3))
}
