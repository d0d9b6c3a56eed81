/** One counter that a request is charged to, with its limit and window in milliseconds. */
export interface QuotaCharge {
  readonly counter: string
  readonly limit: number
  readonly windowMs: number
}

/**
 * Counts requests per counter over a sliding window. The in-memory counter below counts per
 * gateway process; StoreQuotaCounter (quota-store-counter.ts) is shared by every gateway node
 * on one PostgreSQL store.
 */
export interface QuotaCounter {
  /**
   * Charges one request at `nowMs` to every counter, all or nothing. When each counter has room
   * within its limit over the window ending at `nowMs`, it records the request in each and
   * returns zeros. Otherwise it records nothing and returns, per charge, the milliseconds until
   * the counter admits one more request (0 for a counter with room). Concurrent charges are
   * serialized, so together they never exceed a limit.
   */
  charge(charges: readonly QuotaCharge[], nowMs: number): Promise<number[]>
}

/** Upper bound of counters kept; beyond it, counters whose window has passed are dropped. */
const MAX_COUNTERS = 100_000

/**
 * A sliding-log counter in memory: it keeps the time of each request within the window, so the
 * count is exact and the wait is the time until the oldest request leaves the window. Memory is
 * at most `limit` numbers per counter.
 */
export class MemoryQuotaCounter implements QuotaCounter {
  private readonly logs = new Map<string, number[]>()

  /** Checks and records without awaiting in between, so concurrent charges cannot interleave. */
  async charge(charges: readonly QuotaCharge[], nowMs: number): Promise<number[]> {
    const waits = charges.map((c) => this.waitMs(c.counter, c.limit, c.windowMs, nowMs))
    if (waits.some((wait) => wait > 0)) return waits
    for (const c of charges) this.record(c.counter, c.windowMs, nowMs)
    return waits
  }

  /**
   * Returns 0 when one more request fits into `limit` within the window ending at `nowMs`, or
   * the milliseconds until it will fit. It records nothing.
   */
  waitMs(counter: string, limit: number, windowMs: number, nowMs: number): number {
    const log = this.prune(counter, windowMs, nowMs)
    if (log.length < limit) return 0
    // The request at index length - limit must leave the window before another one fits.
    const blocking = log[log.length - limit] as number
    return Math.max(1, blocking + windowMs - nowMs)
  }

  /** Records one request at `nowMs`. */
  record(counter: string, windowMs: number, nowMs: number): void {
    const log = this.prune(counter, windowMs, nowMs)
    log.push(nowMs)
    if (!this.logs.has(counter)) {
      if (this.logs.size >= MAX_COUNTERS) this.dropIdle(nowMs, windowMs)
      this.logs.set(counter, log)
    }
  }

  private prune(counter: string, windowMs: number, nowMs: number): number[] {
    const log = this.logs.get(counter) ?? []
    let expired = 0
    while (expired < log.length && (log[expired] as number) <= nowMs - windowMs) expired++
    if (expired > 0) log.splice(0, expired)
    return log
  }

  private dropIdle(nowMs: number, windowMs: number): void {
    for (const [counter, log] of this.logs) {
      const last = log.at(-1)
      if (last === undefined || last <= nowMs - windowMs) this.logs.delete(counter)
    }
  }
}
