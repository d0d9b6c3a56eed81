/**
 * The moving baseline of one application's request rate. Time is cut into buckets of fixed
 * length; when a bucket ends, its count c updates the baseline b as b = alpha * c +
 * (1 - alpha) * b (an exponentially weighted moving average), and every bucket without requests
 * counts as c = 0. The first completed bucket sets b = c. The baseline is warm once
 * `warmupBuckets` buckets have completed since the first request.
 */
export class RateBaseline {
  private bucketStart = -1
  private count = 0
  private baseline = 0
  private completed = 0
  private reported = false

  constructor(
    private readonly bucketMs: number,
    private readonly alpha: number,
    private readonly warmupBuckets: number,
  ) {}

  /** Counts one request at `nowMs` and returns the current bucket's count and the baseline. */
  add(nowMs: number): { count: number; baseline: number; warm: boolean } {
    const start = Math.floor(nowMs / this.bucketMs) * this.bucketMs
    if (this.bucketStart < 0) {
      this.bucketStart = start
    } else if (start > this.bucketStart) {
      this.complete(this.count)
      // Empty buckets between the last request and now lower the baseline; a bounded number of
      // steps suffices because (1 - alpha)^1000 is negligible for alpha >= 0.01.
      const empty = Math.min(1000, (start - this.bucketStart) / this.bucketMs - 1)
      for (let i = 0; i < empty; i++) this.complete(0)
      this.bucketStart = start
      this.count = 0
      this.reported = false
    }
    this.count++
    return {
      count: this.count,
      baseline: this.baseline,
      warm: this.completed >= this.warmupBuckets,
    }
  }

  /**
   * Returns true the first time it is called in the current bucket and false after, so that a
   * rate above the threshold acts once per bucket: an application that an operator resumes is
   * not suspended again by the requests counted before the resumption.
   */
  claimReport(): boolean {
    if (this.reported) return false
    this.reported = true
    return true
  }

  private complete(count: number): void {
    this.baseline =
      this.completed === 0 ? count : this.alpha * count + (1 - this.alpha) * this.baseline
    this.completed++
  }
}
