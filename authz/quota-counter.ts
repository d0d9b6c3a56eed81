/**
 * Counts requests per counter over a sliding window. The in-memory counter below counts per
 * gateway node; a store-backed counter shared by all nodes can implement the same interface.
 */
export interface QuotaCounter {
  /**
   * Returns 0 when one more request fits into `limit` within the window ending at `nowMs`, or
   * the milliseconds until it will fit. It records nothing.
   */
  waitMs(counter: string, limit: number, windowMs: number, nowMs: number): number
  /** Records one request at `nowMs`. */
  record(counter: string, windowMs: number, nowMs: number): void
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

  waitMs(counter: string, limit: number, windowMs: number, nowMs: number): number {
    const log = this.prune(counter, windowMs, nowMs)
    if (log.length < limit) return 0
    // The request at index length - limit must leave the window before another one fits.
    const blocking = log[log.length - limit] as number
    return Math.max(1, blocking + windowMs - nowMs)
  }

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
